"""S3 throughput under concurrency, and the server's peak RSS (boto3).

Usage: s3_load.py ENDPOINT KEY_ID SECRET BUCKET [--pid PID] [--threads N]

Prints PutObject and GetObject MiB/s for 1 MiB objects (many, N threads)
and 64 MiB objects (a few, N threads), then streams one 1 GiB object from a
file on disk (the client streams it) and prints the server's peak
RSS (VmHWM of PID) before and after it.
"""
import argparse
import concurrent.futures as cf
import os
import time

import boto3
from botocore.config import Config


def client(ep, kid, sec):
    return boto3.client(
        "s3", endpoint_url=ep, aws_access_key_id=kid, aws_secret_access_key=sec,
        region_name="garage",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=64,
                      retries={"max_attempts": 1}))


def hwm_kib(pid):
    if not pid:
        return None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def run(c, bucket, size, count, threads, label):
    body = os.urandom(size)
    keys = [f"bench/{label}/{i}" for i in range(count)]
    t0 = time.time()
    with cf.ThreadPoolExecutor(threads) as ex:
        list(ex.map(lambda k: c.put_object(Bucket=bucket, Key=k, Body=body), keys))
    put = time.time() - t0
    t0 = time.time()

    def get(k):
        got = c.get_object(Bucket=bucket, Key=k)["Body"].read()
        assert len(got) == size
    with cf.ThreadPoolExecutor(threads) as ex:
        list(ex.map(get, keys))
    get_t = time.time() - t0
    mib = size * count / (1 << 20)
    print(f"{label:>6} x {count:4}, {threads} threads: PutObject {mib / put:7.1f} MiB/s"
          f"  GetObject {mib / get_t:7.1f} MiB/s")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("endpoint")
    p.add_argument("key_id")
    p.add_argument("secret")
    p.add_argument("bucket")
    p.add_argument("--pid", type=int)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--big-gib", type=float, default=1.0)
    p.add_argument("--tmp", default="/tmp")
    a = p.parse_args()
    c = client(a.endpoint, a.key_id, a.secret)
    run(c, a.bucket, 1 << 20, 256, a.threads, "1MiB")
    run(c, a.bucket, 64 << 20, 8, min(a.threads, 4), "64MiB")
    before = hwm_kib(a.pid)
    size = int(a.big_gib * (1 << 30))
    path = os.path.join(a.tmp, "big.bin")
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(size >> 20):
            f.write(block)
    t0 = time.time()
    with open(path, "rb") as f:
        c.put_object(Bucket=a.bucket, Key="bench/big", Body=f)
    dt = time.time() - t0
    os.remove(path)
    head = c.head_object(Bucket=a.bucket, Key="bench/big")
    assert head["ContentLength"] == size, head
    after = hwm_kib(a.pid)
    print(f"{a.big_gib:g} GiB single PutObject (streamed): {size / (1 << 20) / dt:.1f} MiB/s")
    if before is not None:
        print(f"server peak RSS (VmHWM): {before / 1024:.0f} MiB before, {after / 1024:.0f} MiB after")


if __name__ == "__main__":
    main()
