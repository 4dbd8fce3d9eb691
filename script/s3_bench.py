#!/usr/bin/env python3
"""PutObject / GetObject throughput with boto3, one request at a time.

    python3 script/s3_bench.py --endpoint http://127.0.0.1:3900 \\
        --key-id GK... --secret ... [--bucket default]

For each object size (1 MiB and 64 MiB by default) it uploads a number of
objects, reads them back (checking their length), deletes them, and prints
MiB/s for both directions. The client hashes every body (SigV4 over http
signs the payload), so the figures include that cost.
"""

import argparse
import os
import time

import boto3
from botocore.config import Config


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--region", default="garage")
    p.add_argument("--key-id", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--bucket", default="default")
    p.add_argument("--sizes-mib", default="1:64,64:4", help="size_mib:count,...")
    args = p.parse_args()
    try:
        cfg = Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                     response_checksum_validation="when_required")
    except TypeError:
        cfg = Config(s3={"addressing_style": "path"})
    s3 = boto3.client("s3", endpoint_url=args.endpoint, region_name=args.region,
                      aws_access_key_id=args.key_id, aws_secret_access_key=args.secret, config=cfg)
    for spec in args.sizes_mib.split(","):
        mib, count = (int(x) for x in spec.split(":"))
        body = os.urandom(mib << 20)
        keys = [f"bench/{mib}MiB/{i}" for i in range(count)]
        t = time.time()
        for k in keys:
            s3.put_object(Bucket=args.bucket, Key=k, Body=body)
        put = time.time() - t
        t = time.time()
        for k in keys:
            n = len(s3.get_object(Bucket=args.bucket, Key=k)["Body"].read())
            assert n == len(body), f"{k}: {n} bytes"
        get = time.time() - t
        for k in keys:
            s3.delete_object(Bucket=args.bucket, Key=k)
        total = mib * count
        print(f"{mib:>3} MiB x {count:<3} PutObject {total / put:7.1f} MiB/s   "
              f"GetObject {total / get:7.1f} MiB/s")


if __name__ == "__main__":
    main()
