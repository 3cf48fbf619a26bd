# SPDX-License-Identifier: MIT
# weft-gdb.py — gdb commands for programs that use weft (stackful coroutines).
#
# Load it in gdb:
#     (gdb) source scripts/weft-gdb.py                    # from a source tree
#     (gdb) source /usr/local/share/weft/weft-gdb.py      # installed (cmake --install)
# or on the command line: gdb -x scripts/weft-gdb.py --args ./prog ...
# (to load it automatically, put the `source` line in ~/.gdbinit).
#
# Commands:
#     weft list              every live coroutine: id, name, state, the worker it last ran
#                            on, what it waits on (for a parked one), stack bytes used / size,
#                            and the gdb thread running it (for a running one)
#     weft bt ID|NAME|EXPR [full]
#                            the backtrace of one coroutine: a parked one (waiting, or
#                            runnable after it has run) from its saved registers, a running
#                            one from the thread that runs it. The argument is a coroutine id,
#                            a coroutine name, or any gdb expression that evaluates to an id
#                            (e.g. a variable holding weft_task.id); `full` adds locals.
#     weft bt all [full]     the backtraces of every live coroutine
#     weft workers           the runtime's workers: index, the coroutine each one runs
#
# How `weft bt` works on a parked coroutine: its saved context (co->ctx) is a 64-byte save
# area on its own stack (src/arch/jump_x86_64_sysv_elf.S): +0x08 r12, +0x10 r13, +0x18 r14,
# +0x20 r15, +0x28 rbx, +0x30 rbp, +0x38 resume rip; the stack pointer after resuming would be
# ctx + 0x40. The command temporarily loads those values into frame 0 of the selected
# (stopped) thread, runs `bt`, and restores every register it touched (also $orig_rax, which
# gdb clobbers when $rip is written, so a thread stopped inside a system call restarts it
# normally when the program continues). The program must be stopped (all-stop mode, the
# default). On a core file, where registers cannot be written, it falls back to a
# frame-pointer walk (weft is built with -fno-omit-frame-pointer). Note: on Linux >= 6.13 weft
# guards stacks with MADV_GUARD_INSTALL, and gdb's `gcore` then saves the stack slabs as
# zeros; run the program with WEFT_STACK_GUARD=mprotect when you want usable gcore dumps.
# The ucontext backend (WEFT_CONTEXT=ucontext) is supported too: there co->ctx points at a
# ucontext_t filled by swapcontext. Boost.Context's x86-64 fcontext has the asm layout.
#
# Requirements and limits:
#   - x86-64 only (the register names and the save-area layout are x86-64 System V).
#   - Needs debug info for weft's structures: build weft with -g (CMAKE_BUILD_TYPE=Debug or
#     RelWithDebInfo). A Release build has no `struct weft__coro` type: the commands say so.
#   - A coroutine caught in the middle of a switch (its state already RUNNING but not yet on
#     a thread, or WAITING a moment before its registers are published) cannot be shown.
#   - Reads are unsynchronised with the program: fine when it is stopped, which gdb ensures.
#
# The listing walks the control-block list `all_coros` (src/core/coro.c) through `all_next`;
# control blocks are never freed, so the walk is always safe. States: RUNNABLE=1, RUNNING=2,
# WAITING=3 (DEAD=4 and FREE=0 are skipped, as are blocks with id 0); bit 0x100 is NOTIFIED.

import struct

import gdb

STATE_FREE, STATE_RUNNABLE, STATE_RUNNING, STATE_WAITING, STATE_DEAD = 0, 1, 2, 3, 4
STATE_NOTIFIED = 0x100
STATE_NAMES = {STATE_FREE: "free", STATE_RUNNABLE: "runnable", STATE_RUNNING: "running",
               STATE_WAITING: "waiting", STATE_DEAD: "dead"}

# asm backend (and Boost.Context x86-64 SysV): register -> offset in the save area.
FCTX_REGS = (("r12", 0x08), ("r13", 0x10), ("r14", 0x18), ("r15", 0x20), ("rbx", 0x28),
             ("rbp", 0x30), ("rip", 0x38))
FCTX_SP_OFFSET = 0x40
# ucontext backend: glibc x86-64 ucontext_t: uc_flags, uc_link, uc_stack (24 bytes), then
# uc_mcontext.gregs[] (REG_R8 = 0 ...).
UC_GREGS = 40
UC_REGS = (("r12", 4), ("r13", 5), ("r14", 6), ("r15", 7), ("rbp", 10), ("rbx", 11),
           ("rsp", 15), ("rip", 16))
SWAP_REGS = ("rip", "rsp", "rbp", "rbx", "r12", "r13", "r14", "r15")
MAX_COROS = 50 * 1000 * 1000  # bound on the list walk (a corrupted list cannot loop forever)


def _err(msg):
    raise gdb.GdbError("weft: " + msg)


def _check_arch():
    try:
        arch = gdb.selected_frame().architecture().name()
    except gdb.error:
        try:
            arch = gdb.selected_inferior().architecture().name()
        except (gdb.error, AttributeError):
            return
    if "x86-64" not in arch:
        _err("this script supports x86-64 only (the program is %s)" % arch)


def _coro_ptr_type():
    try:
        return gdb.lookup_type("struct weft__coro").pointer()
    except gdb.error:
        _err("no debug info for struct weft__coro: build weft with -g "
             "(CMAKE_BUILD_TYPE=Debug or RelWithDebInfo)")


def _lookup_value(name):
    sym = None
    try:
        sym = gdb.lookup_static_symbol(name)
    except (AttributeError, gdb.error):
        pass
    if sym is None:
        try:
            sym = gdb.lookup_global_symbol(name)
        except gdb.error:
            sym = None
    if sym is not None:
        return sym.value()
    try:
        return gdb.parse_and_eval(name)
    except gdb.error:
        return None


def _all_coros():
    ptype = _coro_ptr_type()
    head = _lookup_value("all_coros")
    if head is None:
        head = _lookup_value("'coro.c'::all_coros")
    if head is None:
        _err("cannot find weft's `all_coros` list (is the program linked with a weft built "
             "with -g?)")
    return head.cast(ptype)


def _has_symbol(name):
    try:
        gdb.parse_and_eval("&" + name)
        return True
    except gdb.error:
        return False


_backend_cache = {}


def _backend():
    """'fctx' (asm or Boost layout) or 'ucontext'."""
    key = gdb.current_progspace().filename
    if key not in _backend_cache:
        if _has_symbol("weft__fcontext_start") or _has_symbol("jump_fcontext"):
            b = "fctx"
        elif _has_symbol("swapcontext"):
            b = "ucontext"
        else:
            b = "fctx"
        _backend_cache[key] = b
    return _backend_cache[key]


def _u64(addr):
    mem = gdb.selected_inferior().read_memory(addr, 8)
    return struct.unpack("<Q", bytes(mem))[0]


def _cstr(addr, cap=64):
    """The NUL-terminated string at addr (at most cap bytes), or None for NULL."""
    if addr == 0:
        return None
    out = b""
    inf = gdb.selected_inferior()
    while len(out) < cap:
        try:
            chunk = bytes(inf.read_memory(addr + len(out), min(16, cap - len(out))))
        except gdb.MemoryError:
            return out.decode("utf-8", "replace") if out else "?"
        nul = chunk.find(b"\0")
        if nul >= 0:
            return (out + chunk[:nul]).decode("utf-8", "replace")
        out += chunk
    return out.decode("utf-8", "replace")


class Coro(object):
    """A snapshot of one control block."""

    def __init__(self, v):
        self.v = v
        self.addr = int(v)
        self.raw_state = int(v["state"])
        self.state = self.raw_state & ~STATE_NOTIFIED
        self.id = int(v["id"])
        self.name = _cstr(int(v["name"].address), 32) or ""
        self.ctx = int(v["ctx"])
        self.stack = int(v["stack"])
        self.worker = int(v["last_worker"])
        self.what = _cstr(int(v["wait_what"])) if self.state == STATE_WAITING else None
        self.lo = self.top = self.size = 0
        if self.stack:
            try:  # the descriptor lives beside its slab (malloc'd), not in the stack
                s = v["stack"].dereference()
                self.lo = int(s["lo"])
                self.size = int(s["size"])
                self.top = self.lo + self.size  # weft__stack_top
            except gdb.MemoryError:  # e.g. a core file without the heap
                pass

    def state_name(self):
        n = STATE_NAMES.get(self.state, "state%d" % self.state)
        if self.raw_state & STATE_NOTIFIED:
            n += "+notified"
        return n

    def parked(self):
        return (self.state in (STATE_WAITING, STATE_RUNNABLE) and self.ctx != 0 and
                self.stack != 0)

    def saved_regs(self):
        """Register values a resume would load, as a dict (name -> int)."""
        regs = {}
        if _backend() == "ucontext":
            for name, idx in UC_REGS:
                regs[name] = _u64(self.ctx + UC_GREGS + 8 * idx)
        else:
            for name, off in FCTX_REGS:
                regs[name] = _u64(self.ctx + off)
            regs["rsp"] = self.ctx + FCTX_SP_OFFSET
        return regs

    def saved_sp(self):
        if _backend() == "ucontext":
            return _u64(self.ctx + UC_GREGS + 8 * 15)
        return self.ctx + FCTX_SP_OFFSET

    def contains(self, sp):
        return self.stack != 0 and self.lo <= sp < self.top  # descriptor unreadable: never


def live_coros():
    """Every live coroutine (not FREE or DEAD, id != 0), in list order."""
    co = _all_coros()
    out = []
    n = 0
    while int(co) != 0:
        n += 1
        if n > MAX_COROS:
            gdb.write("weft: stopping the walk after %d control blocks (corrupted list?)\n" % n)
            break
        v = co.dereference()
        state = int(v["state"]) & ~STATE_NOTIFIED
        if state not in (STATE_FREE, STATE_DEAD) and int(v["id"]) != 0:
            out.append(Coro(co))
        co = v["all_next"]
    return out


class _Selection(object):
    """Restores the selected thread and frame on exit."""

    def __enter__(self):
        self.thread = gdb.selected_thread()
        try:
            self.frame = gdb.selected_frame()
        except gdb.error:
            self.frame = None
        return self

    def __exit__(self, *exc):
        try:
            if self.thread is not None and self.thread.is_valid():
                self.thread.switch()
            if self.frame is not None and self.frame.is_valid():
                self.frame.select()
        except gdb.error:
            pass
        return False


def thread_sps():
    """[(thread, rsp of its newest frame)] for every stopped thread."""
    out = []
    inf = gdb.selected_inferior()
    if inf is None or inf.pid == 0 and not inf.threads():
        return out
    with _Selection():
        for t in inf.threads():
            try:
                if t.is_running() or t.is_exited():
                    continue
                t.switch()
                out.append((t, int(gdb.newest_frame().read_register("rsp"))))
            except gdb.error:
                continue
    return out


def thread_of(co, sps):
    for t, sp in sps:
        if co.contains(sp):
            return t, sp
    return None, None


def _runtime_workers():
    """The running runtime, or None when none runs; an error when weft's debug info is
    missing (weft__rt unreadable), which must not pass for "no runtime"."""
    rt = _lookup_value("weft__rt")
    if rt is None:
        _err("no debug info for weft (cannot read weft__rt): build weft with -g "
             "(CMAKE_BUILD_TYPE RelWithDebInfo, the default, or Debug)")
    if int(rt) == 0:
        return None
    return rt.dereference()


def cmd_list(arg):
    _check_arch()
    coros = live_coros()
    sps = thread_sps()
    rt = _runtime_workers()
    head = "weft: %d live coroutine%s" % (len(coros), "" if len(coros) == 1 else "s")
    if rt is not None:
        head += ", %d worker%s" % (int(rt["nworkers"]), "" if int(rt["nworkers"]) == 1 else "s")
    else:
        head += " (no runtime running)"
    gdb.write(head + "\n")
    if not coros:
        return
    gdb.write("%8s  %-31s  %-16s  %6s  %-12s  %17s  %s\n" %
              ("ID", "NAME", "STATE", "WORKER", "WAITS ON", "STACK USED/SIZE", "THREAD"))
    for co in coros:
        used = "-"
        thread = ""
        if co.parked():
            try:
                used = str(co.top - co.saved_sp())
            except gdb.MemoryError:
                used = "?"
        elif co.state == STATE_RUNNING:
            t, sp = thread_of(co, sps)
            if t is not None:
                used = str(co.top - sp)
                thread = str(t.num)
        size = str(co.size) if co.stack and co.size else ("?" if co.stack else "-")
        line = "%8d  %-31s  %-16s  %6s  %-12s  %17s  %s" % (
            co.id, co.name or "-", co.state_name(), str(co.worker) if co.worker >= 0 else "-",
            co.what or "-", "%s/%s" % (used, size), thread)
        gdb.write(line.rstrip() + "\n")


def find_coro(arg):
    arg = arg.strip()
    coros = live_coros()
    try:
        want = int(arg, 0)
    except ValueError:
        want = None
    if want is None:
        named = [c for c in coros if c.name == arg]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            _err("%d coroutines are named %r: use an id (%s)" %
                 (len(named), arg, ", ".join(str(c.id) for c in named)))
        try:
            want = int(gdb.parse_and_eval(arg))
        except gdb.error:
            _err("no live coroutine named %r (and it is not an expression)" % arg)
    for c in coros:
        if c.id == want:
            return c
    _err("no live coroutine with id %d (finished, never existed, or not yet started)" % want)


def _read_reg(name):
    return int(gdb.newest_frame().read_register(name).cast(gdb.lookup_type("long")))


def _set_reg(name, value):
    gdb.execute("set $%s = (long)%d" % (name, _signed(value)), to_string=True)


def _signed(v):
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def _print_bt(full):
    gdb.execute("bt full" if full else "bt")


def bt_with_registers(regs, full):
    """Load regs into frame 0 of the selected thread, print bt, restore everything."""
    thread = gdb.selected_thread()
    if thread is None:
        _err("no thread selected (start the program first)")
    if thread.is_running():
        _err("the selected thread is running: stop the program first (all-stop mode)")
    with _Selection():
        gdb.newest_frame().select()
        old = dict((r, _read_reg(r)) for r in SWAP_REGS)
        try:
            old_orig = _read_reg("orig_rax")
        except (gdb.error, ValueError):
            old_orig = None
        try:
            try:
                for r in SWAP_REGS:
                    _set_reg(r, regs[r])
            except gdb.error as e:
                return str(e)  # e.g. a core file: registers are read-only
            _print_bt(full)
        finally:
            for r in SWAP_REGS:
                try:
                    _set_reg(r, old[r])
                except gdb.error:
                    pass
            if old_orig is not None:  # gdb sets it to -1 when $rip is written (no restart)
                try:
                    _set_reg("orig_rax", old_orig)
                except gdb.error:
                    pass
    return None


def _describe_pc(pc):
    s = "0x%016x" % pc
    try:
        block = gdb.block_for_pc(pc)
    except RuntimeError:
        block = None
    fn = block.function if block is not None else None
    while block is not None and fn is None:
        block = block.superblock
        fn = block.function if block is not None else None
    if fn is not None:
        s += " in %s" % fn.print_name
    else:
        try:
            name = gdb.execute("info symbol 0x%x" % pc, to_string=True).strip()
            if not name.startswith("No symbol"):
                s += " in " + name.split(" in section")[0]
        except gdb.error:
            pass
    sal = gdb.find_pc_line(pc)
    if sal.symtab is not None:
        s += " at %s:%d" % (sal.symtab.filename, sal.line)
    return s


def bt_frame_pointers(co, regs):
    """Fallback without writable registers: walk the saved rbp chain on co's stack."""
    gdb.write("(frame-pointer walk: frames built without frame pointers are skipped)\n")
    try:
        _bt_frame_pointers(co, regs)
    except gdb.MemoryError as e:
        gdb.write("weft: the coroutine's stack is not readable (%s): a core file without "
                  "its stack mappings?\n" % e)


def _bt_frame_pointers(co, regs):
    pc = regs["rip"]
    gdb.write("#0  %s\n" % _describe_pc(pc))
    fp = regs["rbp"]
    n = 1
    while n < 128 and co.lo <= fp and fp + 16 <= co.top:
        ret = _u64(fp + 8)
        if ret == 0:
            break
        gdb.write("#%-2d %s\n" % (n, _describe_pc(ret - 1).replace(
            "0x%016x" % (ret - 1), "0x%016x" % ret, 1)))
        up = _u64(fp)
        if up <= fp:
            break
        fp = up
        n += 1


def bt_one(co, full, sps=None):
    gdb.write("coroutine %d \"%s\" %s%s\n" %
              (co.id, co.name, co.state_name(), " on " + co.what if co.what else ""))
    if co.parked():
        try:
            regs = co.saved_regs()
        except gdb.MemoryError as e:
            gdb.write("weft: cannot read the saved context at 0x%x (%s)\n" % (co.ctx, e))
            return
        failed = bt_with_registers(regs, full)
        if failed is not None:
            gdb.write("weft: cannot load registers (%s)\n" % failed)
            bt_frame_pointers(co, regs)
        return
    if co.state == STATE_RUNNING:
        if sps is None:
            sps = thread_sps()
        t, _ = thread_of(co, sps)
        if t is None:
            gdb.write("(running, but no stopped thread is on its stack: caught mid-switch)\n")
            return
        gdb.write("(running on gdb thread %d)\n" % t.num)
        with _Selection():
            t.switch()
            gdb.newest_frame().select()
            _print_bt(full)
        return
    if co.state == STATE_RUNNABLE and co.ctx == 0:
        gdb.write("(runnable, has not run yet: no stack)\n")
        return
    gdb.write("(no saved context to show)\n")


def cmd_bt(arg):
    _check_arch()
    words = arg.split()
    full = False
    if words and words[-1] == "full":
        full = True
        words = words[:-1]
    if not words:
        _err("usage: weft bt ID|NAME|EXPR|all [full]")
    target = " ".join(words)
    if target == "all":
        sps = thread_sps()
        coros = live_coros()
        for i, co in enumerate(coros):
            if i:
                gdb.write("\n")
            bt_one(co, full, sps)
        return
    bt_one(find_coro(target), full)


def cmd_workers(arg):
    rt = _runtime_workers()
    if rt is None:
        gdb.write("weft: no runtime running\n")
        return
    n = int(rt["nworkers"])
    gdb.write("weft: %d worker%s, stopping=%d\n" % (n, "" if n == 1 else "s", int(rt["stopping"])))
    for i in range(n):
        w = rt["workers"][i]
        if int(w) == 0:
            continue
        w = w.dereference()
        cur = w["current"]
        if int(cur) != 0:
            c = cur.dereference()
            what = "running coroutine %d \"%s\"" % (int(c["id"]),
                                                     _cstr(int(c["name"].address), 32))
        else:
            what = "in the scheduler"
        flags = []
        for f in ("idle", "spinning", "in_poll"):
            try:
                if bool(w[f]):
                    flags.append(f)
            except gdb.error:
                pass
        gdb.write("  worker %d: %s%s\n" % (int(w["index"]), what,
                                            " [" + ", ".join(flags) + "]" if flags else ""))


class WeftPrefix(gdb.Command):
    """weft: inspect a weft program's coroutines.

Subcommands: weft list, weft bt ID|NAME|EXPR|all [full], weft workers.
See scripts/weft-gdb.py for details."""

    def __init__(self):
        super(WeftPrefix, self).__init__("weft", gdb.COMMAND_STACK, gdb.COMPLETE_NONE, True)


class WeftList(gdb.Command):
    """List the live coroutines: id, name, state, worker, what a parked one waits on,
stack bytes used / size, and the gdb thread of a running one."""

    def __init__(self):
        super(WeftList, self).__init__("weft list", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        cmd_list(arg)


class WeftBt(gdb.Command):
    """Backtrace of a coroutine: weft bt ID|NAME|EXPR|all [full].

A parked coroutine's saved registers are loaded into frame 0 of the selected thread for the
`bt` and restored afterwards; a running one is shown from the thread running it."""

    def __init__(self):
        super(WeftBt, self).__init__("weft bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        cmd_bt(arg)


class WeftWorkers(gdb.Command):
    """List the runtime's workers and what each one runs."""

    def __init__(self):
        super(WeftWorkers, self).__init__("weft workers", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        cmd_workers(arg)


WeftPrefix()
WeftList()
WeftBt()
WeftWorkers()
