"""The warm-up's solution: the lab is already up (make up); write the answer."""

from labctl.book import answers


def solve(lab):
    path = answers.update(lab.root, None, {"name": "instructor"})
    print(f"  wrote name to {path.name}")
