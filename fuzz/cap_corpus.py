#!/usr/bin/env python3
"""Caps a fuzz corpus at N files with the most edge coverage (greedy).

libFuzzer's minimization (`cargo fuzz cmin`) keeps every file that adds a
feature, thousands for some targets; we keep a few hundred in the
repository. Make the control file first, then run this script:

    B=target/x86_64-unknown-linux-gnu/release
    mkdir /tmp/m && $B/router -merge=1 -use_counters=0 \
        -merge_control_file=/tmp/ctl /tmp/m corpus/router
    python3 cap_corpus.py /tmp/ctl 300 corpus/router

Files named `regression-*` are always kept.
"""
import sys, os, shutil
ctl, cap, corpus = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = open(ctl).read().split('\n')
n = int(lines[0]); files = lines[2:2+n]
cov = {}
for l in lines[2+n:]:
    if l.startswith('COV '):
        p = l.split(); cov[int(p[1])] = set(map(int, p[2:]))
allc = set().union(*cov.values()) if cov else set()
chosen, have = [], set()
sizes = {i: os.path.getsize(files[i]) for i in cov}
while len(chosen) < cap:
    best = max(cov, key=lambda i: (len(cov[i] - have), -sizes[i]), default=None)
    if best is None or not (cov[best] - have): break
    chosen.append(best); have |= cov.pop(best)
keep = {os.path.basename(files[i]) for i in chosen}
for f in os.listdir(corpus):
    if f not in keep and not f.startswith('regression-'):
        os.remove(os.path.join(corpus, f))
print(f"kept {len(chosen)} files covering {len(have)}/{len(allc)} edges ({100*len(have)/max(1,len(allc)):.1f}%)")
