"""The exercise book's tooling: `make exercises`, `make check EX=N`, `make solve EX=N`.

Each exercise is a folder `exercises/NN-slug/` with a README.md (the task), a check.py
(the self-check: `TITLE` and `criteria(lab)`) and a solve.py (the instructor's solution:
`solve(lab)`). Checks read the lab only through what it publishes (MLflow's REST API, the
servers' HTTP endpoints, the registry's API, report files, git) and change nothing.
"""
