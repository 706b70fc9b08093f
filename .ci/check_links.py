"""Check every relative Markdown link: `](path)`, `](path#anchor)` and `](#anchor)` in tracked *.md files."""
import re, subprocess, sys, unicodedata
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
files = subprocess.run(["git", "ls-files", "*.md"], cwd=root, capture_output=True, text=True).stdout.split()
files += subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "*.md"], cwd=root, capture_output=True, text=True).stdout.split()

def slug(heading):  # GitHub's anchor: lower-case, drop punctuation except - and _, spaces to -
    h = re.sub(r"`|\*\*|\*", "", heading.strip()).lower()
    h = "".join(c for c in h if c.isalnum() or c in " -_")
    return h.replace(" ", "-")

def anchors(path):
    out, fence, seen = set(), False, {}
    for line in path.read_text().splitlines():
        if line.startswith("```"): fence = not fence
        m = None if fence else re.match(r"^#{1,6} (.*)", line)
        if m:
            s = slug(m.group(1)); n = seen.get(s, 0); seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
    return out

bad = checked = 0
for f in files:
    path = root / f
    text, fence = [], False
    for line in path.read_text().splitlines():
        if line.startswith("```"): fence = not fence; continue
        if not fence: text.append(line)
    for target in re.findall(r"\]\(([^)\s]+)\)", "\n".join(text)):
        if re.match(r"^[a-z]+:", target): continue  # http:, mailto:
        checked += 1
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            print(f"{f}: missing file {target}"); bad += 1; continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            print(f"{f}: missing anchor {target}"); bad += 1
print(f"{checked} links checked in {len(files)} files, {bad} broken")
sys.exit(1 if bad else 0)
