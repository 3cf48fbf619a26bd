#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""gen-man.py — weft's manual pages, generated from the doc comments of the public headers.

    scripts/gen-man.py --out DIR --version X.Y.Z include/weft.h include/weft/*.h

Writes DIR/man3/<function>.3 for every WEFT_EXTERN function of the headers and DIR/man7/weft.7
(the overview: the conventions, every function by area). Standard library only; runs with
/usr/bin/python3. The build runs it (target weft_man) and installs DIR into share/man;
tests/test_man.sh checks that every function libweft.so exports has its page.

Where a page's text comes from — so that a new function only needs a doc comment:
  - DESCRIPTION: the comment block right above the declaration. Declarations that follow one
    another without a blank line or another comment share it (weft_join and
    weft_join_until); a comment after the declaration on the same line is added to it.
  - SYNOPSIS: the declarations of that group, with the types and constants defined in the
    same paragraph (weft_select shows weft_case).
  - TYPES: every weft type of the prototypes that is defined elsewhere, with its comment
    (weft_run shows weft_config; the channel calls show weft_chan's lifetime rules).
  - NOTES: the introduction of the header the function is declared in (sync.h, io.h, ...).
A function without any comment gets a page that says "undocumented", which the test reports.
"""
import argparse
import os
import re
import sys

PROTO = re.compile(r"\bWEFT_EXTERN\b(.*?)\b(weft_[a-z0-9_]+)\s*\(")
TYPEDEF_NAME = re.compile(r"\}\s*(weft_[a-z0-9_]+)\s*;|typedef\s+struct\s+\w+\s+(weft_[a-z0-9_]+)\s*;"
                          r"|typedef\s+[^;(]*\(\s*\*\s*(weft_[a-z0-9_]+)\s*\)")
SECTION = re.compile(r"^/\*\s*=+\s*(.*?)\s*=+\s*\*/\s*$")


def comment_text(lines):
    """The text of a /* ... */ block given as source lines, without the comment markers."""
    out = []
    for i, line in enumerate(lines):
        s = line.strip()
        if i == 0:
            s = s[2:]
        elif s.startswith("*") and not s.startswith("*/"):
            s = s[1:]
        if s.endswith("*/"):
            s = s[:-2]
        out.append(s.strip())
    while out and not out[0]:
        out.pop(0)
    while out and not out[-1]:
        out.pop()
    return out


class Header:
    """One header: its paragraphs (runs of non-blank lines), functions and types."""

    def __init__(self, path, include_as):
        self.path = path
        self.include_as = include_as
        with open(path, encoding="utf-8") as f:
            self.lines = f.read().split("\n")
        self.intro = []      # the file's top comment without its title line
        self.title = ""      # "channels and select"
        self.functions = []  # dicts, in header order
        self.types = {}      # weft type name -> source lines (comment and definition)
        self._parse()

    def _parse(self):
        # The license line (SPDX) comes first: not part of the documentation.
        while self.lines and "SPDX-License-Identifier" in self.lines[0]:
            self.lines = self.lines[1:]
        lines = self.lines
        i = 0
        # The file's top comment: "weft/chan.h — channels and select (included by weft.h)."
        if lines and lines[0].startswith("/*"):
            j = 0
            while "*/" not in lines[j]:
                j += 1
            text = comment_text(lines[: j + 1])
            m = re.match(r"\S+\s+[—-]+\s+(.*)", text[0]) if text else None
            self.title = (m.group(1) if m else text[0]).rstrip(".") if text else ""
            self.title = re.sub(r"\s*\(included by weft\.h\)", "", self.title)
            self.intro = text[1:]
            i = j + 1
        section = self.title
        para = []
        paras = []
        for line in lines[i:] + [""]:
            m = SECTION.match(line.strip())
            if m:
                section = m.group(1).lower()
                continue
            if line.strip() == "":
                if para:
                    paras.append((section, para))
                para = []
            else:
                para.append(line)
        for section, para in paras:
            self._paragraph(section, para)

    def _paragraph(self, section, para):
        # Split into items: ("comment", lines) and ("code", lines).
        items = []
        k = 0
        while k < len(para):
            s = para[k].lstrip()
            if s.startswith("/*"):
                j = k
                while "*/" not in para[j]:
                    j += 1
                items.append(("comment", para[k : j + 1]))
                k = j + 1
            else:
                # A prototype that wraps onto continuation lines is one line here.
                line, k = para[k], k + 1
                if "WEFT_EXTERN" in line:
                    while ";" not in line and k < len(para):
                        line, k = line.rstrip() + " " + para[k].strip(), k + 1
                items.append(("code", [line]))
        if any(l.lstrip().startswith("#") for kind, ls in items if kind == "code" for l in ls) and \
                not any("WEFT_EXTERN" in l or "typedef" in l for _, ls in items for l in ls):
            return  # include guards, includes, macros alone
        code = [l for kind, ls in items if kind == "code" for l in ls]
        context = [l for l in code if "WEFT_EXTERN" not in l and not l.startswith(("#if", "#endif",
                   "#else", "#define WEFT_EXTERN", "extern \"C\"", "}"))]
        # Types defined here: their paragraph is the type's documentation.
        for l in code:
            for m in TYPEDEF_NAME.finditer(l):
                name = next(g for g in m.groups() if g)
                self.types.setdefault(name, para)
        # Functions: the comment in force is the last one before them in this paragraph.
        doc = []
        group = None
        last_kind = None
        for kind, ls in items:
            if kind == "comment":
                doc = comment_text(ls)
                group = None
                last_kind = kind
                continue
            line = ls[0]
            m = PROTO.search(line)
            if not m:
                last_kind = kind
                continue
            proto = line[: line.index(";") + 1].replace("WEFT_EXTERN ", "").strip()
            trailing = []
            rest = line[line.index(";") + 1 :].strip()
            if rest.startswith("/*"):
                trailing = comment_text([rest])
            if group is None:
                group = {"doc": doc, "members": [], "section": section, "context": context}
            fn = {"name": m.group(2), "proto": proto, "trailing": trailing, "group": group,
                  "header": self}
            group["members"].append(fn)
            self.functions.append(fn)
            last_kind = kind


def roff_escape(text):
    text = text.replace("\\", "\\e")
    # Non-ASCII as groff escapes, so the pages render without preconv (em dash: \(em).
    text = "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in text)
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def roff_lines(lines):
    return [roff_escape(l) for l in lines]


def code_block(lines):
    out = [".PP", ".nf", ".in +4n"]
    out += roff_lines([l.rstrip() for l in lines])
    out += [".in", ".fi"]
    return out


def first_sentence(text):
    """The NAME line: the comment up to its first "; ", ": " or end of sentence (outside
    parentheses)."""
    t = " ".join(text)
    depth = 0
    for i, c in enumerate(t):
        depth += (c == "(") - (c == ")")
        nxt = t[i + 1 : i + 3]
        if depth == 0 and ((c in ";:" and nxt[:1] == " ") or
                           (c == "." and nxt[:1] == " " and nxt[1:2].isupper())):
            return t[:i]
    return t[:-1] if t.endswith(".") else t


def page(fn, all_types, version, date):
    name = fn["name"]
    group = fn["group"]
    hdr = fn["header"]
    desc = list(group["doc"])
    if fn["trailing"]:
        desc += [""] + fn["trailing"] if desc else fn["trailing"]
    summary = first_sentence(desc) if desc else "undocumented"
    out = ['.\\" Generated by scripts/gen-man.py from %s; edit the header comment, not this file.'
           % hdr.include_as,
           '.TH %s 3 "%s" "weft %s" "weft manual"' % (name.upper(), date, version),
           ".SH NAME", "%s \\- %s" % (name, roff_escape(summary)),
           ".SH SYNOPSIS", ".nf", ".B #include <weft.h>", ".PP"]
    for line in group["context"]:
        out.append(roff_escape(line.rstrip()))
    if group["context"]:
        out.append(".PP")
    for other in group["members"]:
        out.append(roff_escape(other["proto"]))
    out.append(".fi")
    out += [".SH DESCRIPTION"]
    if desc:
        for l in desc:
            out.append(".PP" if l == "" else roff_escape(l))
    else:
        out.append("undocumented: %s has no doc comment in %s." % (name, hdr.include_as))
    # Types of the prototypes that are defined in another paragraph.
    used = []
    for other in group["members"]:
        for t in re.findall(r"\bweft_[a-z0-9_]+\b", other["proto"]):
            if t in all_types and t not in used and not any(
                    t in l for l in group["context"]):
                used.append(t)
    if used:
        out.append(".SH TYPES")
        for t in used:
            out += code_block(all_types[t])
    if hdr.intro:
        out += [".SH NOTES"] + roff_lines(hdr.intro)
    out += [".SH RETURN VALUE",
            "Unless described otherwise above: 0 (or a count) on success, a negative",
            ".B WEFT_E*",
            "code on failure; weft never sets",
            ".BR errno .",
            "See",
            ".BR weft_strerror (3)",
            "and",
            ".BR weft (7)."]
    see = [m["name"] for m in group["members"] if m is not fn]
    see += [f["name"] for f in hdr.functions if f["group"]["section"] == group["section"]
            and f["name"] not in see and f is not fn]
    refs = ["weft(7)"] + ["%s(3)" % s for s in see[:12]]
    out += [".SH SEE ALSO"]
    out.append(",\n".join(".BR %s (%s)" % (r[:-3], r[-2]) for r in refs))
    return "\n".join(out) + "\n"


def overview(headers, version, date):
    top = headers[0].intro
    out = ['.\\" Generated by scripts/gen-man.py from the weft headers.',
           '.TH WEFT 7 "%s" "weft %s" "weft manual"' % (date, version),
           ".SH NAME", "weft \\- stackful coroutines for C on an M:N work-stealing scheduler",
           ".SH SYNOPSIS", ".nf", ".B #include <weft.h>", ".PP",
           "cc prog.c $(pkg-config --cflags --libs weft)", ".fi",
           ".SH DESCRIPTION"] + roff_lines(top)
    sections = []
    for h in headers:
        for fn in h.functions:
            sec = fn["group"]["section"]
            if sec not in [s for s, _ in sections]:
                sections.append((sec, []))
            dict(sections)[sec].append(fn)
    errors = re.findall(r'X\((\w+),\s*([^,]+),\s*((?:"[^"]*"[\s\\]*)+)\)',
                        "\n".join(headers[0].lines))
    if errors:
        out += [".SH ERRORS", "The codes weft returns besides the kernel's negative errno values",
                "(which I/O calls pass through); weft_strerror(3) gives each one's text."]
        for name, value, text in errors:
            msg = "".join(re.findall(r'"([^"]*)"', text))
            out += [".TP", '.BR WEFT_%s " (%s)"' % (name, value.strip()), roff_escape(msg)]
    out.append(".SH FUNCTIONS")
    for sec, fns in sections:
        out += [".SS %s" % roff_escape(sec[:1].upper() + sec[1:])]
        for fn in fns:
            doc = fn["group"]["doc"] or fn["trailing"]
            out += [".TP", ".BR %s (3)" % fn["name"],
                    roff_escape(first_sentence(doc)) if doc else "undocumented"]
    out += [".SH SEE ALSO",
            "The README (install, a first program, ownership and lifetimes, pitfalls) and",
            "docs/ (design, benchmarks) of the weft sources; samples/."]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--date", default="", help="the pages' date (default: none)")
    ap.add_argument("headers", nargs="+", help="weft.h first, then include/weft/*.h")
    a = ap.parse_args()
    headers = []
    for p in a.headers:
        base = os.path.basename(p)
        inc = base if base == "weft.h" else "weft/" + base
        headers.append(Header(p, inc))
    all_types = {}
    for h in headers:
        for t, para in h.types.items():
            all_types.setdefault(t, para)
    man3 = os.path.join(a.out, "man3")
    man7 = os.path.join(a.out, "man7")
    os.makedirs(man3, exist_ok=True)
    os.makedirs(man7, exist_ok=True)
    for old in os.listdir(man3):  # a function removed from the headers loses its page
        if old.endswith(".3"):
            os.remove(os.path.join(man3, old))
    seen = set()
    undocumented = []
    for h in headers:
        for fn in h.functions:
            if fn["name"] in seen:
                continue
            seen.add(fn["name"])
            if not fn["group"]["doc"] and not fn["trailing"]:
                undocumented.append(fn["name"])
            with open(os.path.join(man3, fn["name"] + ".3"), "w", encoding="utf-8") as f:
                f.write(page(fn, all_types, a.version, a.date))
    with open(os.path.join(man7, "weft.7"), "w", encoding="utf-8") as f:
        f.write(overview(headers, a.version, a.date))
    for n in undocumented:
        print("gen-man: warning: %s has no doc comment (its page says undocumented)" % n,
              file=sys.stderr)
    print("gen-man: %d pages in %s" % (len(seen) + 1, a.out))


if __name__ == "__main__":
    main()
