"""Sign and send one task completion to Points Mall, as the grid platform does.

    python scripts/send_task_completion.py --url http://127.0.0.1:5000 \
        --secret <the community's platform secret> --community 1 --volunteer 3 \
        --task T-2026-0001 --points 10

The secret is shown to admins on the community's rules page. Standard library only.
"""

import argparse
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--community", type=int, required=True)
    parser.add_argument("--volunteer", type=int, required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--points", type=int, required=True)
    parser.add_argument("--title", default="网格巡查任务")
    args = parser.parse_args()
    body = json.dumps({"community_id": args.community, "task_id": args.task,
                       "volunteer_id": args.volunteer, "points": args.points,
                       "title": args.title}, ensure_ascii=False).encode()
    timestamp = str(int(time.time()))
    signature = hmac.new(args.secret.encode(), timestamp.encode() + b"." + body,
                         hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        args.url.rstrip("/") + "/api/v1/platform/task-completions", data=body, method="POST",
        headers={"Content-Type": "application/json", "X-Timestamp": timestamp,
                 "X-Signature": signature})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(response.status, response.read().decode())
    except urllib.error.HTTPError as error:
        print(error.code, error.read().decode())


if __name__ == "__main__":
    main()
