"""seqrec from Python, as in a notebook: a trained run's lists, similar tracks and evaluation as pandas frames.

python examples/notebook.py runs/demo
"""

import sys

import seqrec

run = seqrec.load_run(sys.argv[1] if len(sys.argv) > 1 else "runs/demo")
users = run.data.users["user_id"].iloc[run.data.test_users[:2]].tolist()

lists = run.recommend(users, k=5)
print(lists.to_string(index=False))

first = int(lists["item_id"].iloc[0])
print(run.similar(first, k=3).to_string(index=False))

table = run.evaluate(["relisten"])
print(table[["score", f"ndcg@{run.cfg.eval.k}", "repeat"]].round(4).to_string())
