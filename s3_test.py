#!/usr/bin/env python3
"""End-to-end S3 test with boto3 against a running node.

Drives every S3 operation the node implements: buckets, put/get/head/
delete, ranges, conditional reads, copy, delete-objects, listings with
delimiters over 1,000+ keys, multipart uploads, a 100 MiB streamed upload
compared by hash, a presigned GET, and refusals (wrong key, read-only key,
NotImplemented). Started by script/s3_test.sh; run it by hand with
--endpoint, --key-id, --secret (and --ro-key-id / --ro-secret for a key
that may only read the bucket).
"""

import argparse
import concurrent.futures
import hashlib
import os
import sys
import time
import urllib.request
import urllib.error

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

FAILS = []


def check(cond, what):
    if cond:
        print(f"ok   {what}")
    else:
        print(f"FAIL {what}")
        FAILS.append(what)


def code_of(fn):
    """The S3 error code (and HTTP status) fn raises, or None."""
    try:
        fn()
    except ClientError as e:
        return e.response["Error"].get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None


def client(args, key_id, secret, **cfg):
    conf = dict(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1},
        signature_version="s3v4",
    )
    # Newer botocore sends CRC checksums by default; keep them when required
    # only, like most S3-compatible servers expect (both forms work here).
    try:
        c = Config(request_checksum_calculation="when_required",
                   response_checksum_validation="when_required", **conf, **cfg)
    except TypeError:
        c = Config(**conf, **cfg)
    return boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=c,
    )


def test_buckets(s3, args):
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    check(args.bucket in names, f"ListBuckets shows {args.bucket}")
    s3.head_bucket(Bucket=args.bucket)
    check(True, "HeadBucket")
    loc = s3.get_bucket_location(Bucket=args.bucket)
    check(loc.get("LocationConstraint") == args.region, "GetBucketLocation is the region")
    check(code_of(lambda: s3.head_bucket(Bucket="no-such-bucket-xyz")) == ("404", 404),
          "HeadBucket of a missing bucket: 404")
    check(code_of(lambda: s3.list_objects_v2(Bucket="no-such-bucket-xyz"))
          == ("NoSuchBucket", 404), "NoSuchBucket 404")
    # CreateBucket, a non-empty DeleteBucket refused, then deleted.
    name = "s3test-" + os.urandom(4).hex()
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": args.region})
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    check(name in names, "CreateBucket: listed")
    check(code_of(lambda: s3.create_bucket(Bucket=name)) is not None,
          "CreateBucket of an existing name refused")
    s3.put_object(Bucket=name, Key="x", Body=b"x")
    check(code_of(lambda: s3.delete_bucket(Bucket=name)) == ("BucketNotEmpty", 409),
          "DeleteBucket of a non-empty bucket: BucketNotEmpty 409")
    s3.delete_object(Bucket=name, Key="x")
    s3.delete_bucket(Bucket=name)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    check(name not in names, "DeleteBucket of an empty bucket")
    check(code_of(lambda: s3.create_bucket(Bucket="Bad_Name")) is not None,
          "CreateBucket with an invalid name refused")


def test_objects(s3, args):
    b = args.bucket
    # Small (inline) and larger (blocks) objects, with metadata.
    for size in [0, 1, 3000, 3073, 1_500_000, 3 * 1024 * 1024 + 17]:
        data = os.urandom(size)
        r = s3.put_object(Bucket=b, Key=f"obj/{size}", Body=data, ContentType="text/x-test",
                          Metadata={"color": "blue"})
        etag = r["ETag"].strip('"')
        check(etag == hashlib.md5(data).hexdigest(), f"PutObject {size} B: ETag is the MD5")
        g = s3.get_object(Bucket=b, Key=f"obj/{size}")
        body = g["Body"].read()
        check(body == data, f"GetObject {size} B: same bytes")
        check(g["ContentType"] == "text/x-test", f"GetObject {size} B: Content-Type")
        check(g["Metadata"].get("color") == "blue", f"GetObject {size} B: x-amz-meta-*")
        h = s3.head_object(Bucket=b, Key=f"obj/{size}")
        check(h["ContentLength"] == size and h["ETag"] == r["ETag"], f"HeadObject {size} B")
    check(code_of(lambda: s3.get_object(Bucket=b, Key="obj/missing")) == ("NoSuchKey", 404),
          "GetObject of a missing key: NoSuchKey 404")
    check(code_of(lambda: s3.head_object(Bucket=b, Key="obj/missing")) == ("404", 404),
          "HeadObject of a missing key: 404")
    # Overwrite, then delete.
    s3.put_object(Bucket=b, Key="obj/over", Body=os.urandom(2_000_000))
    s3.put_object(Bucket=b, Key="obj/over", Body=b"short")
    check(s3.get_object(Bucket=b, Key="obj/over")["Body"].read() == b"short", "overwrite")
    s3.delete_object(Bucket=b, Key="obj/over")
    check(code_of(lambda: s3.get_object(Bucket=b, Key="obj/over")) == ("NoSuchKey", 404),
          "DeleteObject")
    s3.delete_object(Bucket=b, Key="obj/never-existed")
    check(True, "DeleteObject of a missing key succeeds")
    # Keys with special characters.
    for key in ["a b/c+d", "ü/€ %2F", "x?y=z&w", "tab\there"]:
        s3.put_object(Bucket=b, Key=key, Body=key.encode())
        check(s3.get_object(Bucket=b, Key=key)["Body"].read() == key.encode(),
              f"key {key!r} round-trips")
        s3.delete_object(Bucket=b, Key=key)


def test_ranges_and_conditions(s3, args):
    b = args.bucket
    data = os.urandom(2_500_000)
    etag = s3.put_object(Bucket=b, Key="range", Body=data)["ETag"]
    for rng, (s, e) in [("bytes=0-9", (0, 10)), ("bytes=1048570-1048600", (1048570, 1048601)),
                        ("bytes=-100", (len(data) - 100, len(data))),
                        ("bytes=2000000-", (2000000, len(data)))]:
        g = s3.get_object(Bucket=b, Key="range", Range=rng)
        check(g["Body"].read() == data[s:e] and g["ResponseMetadata"]["HTTPStatusCode"] == 206,
              f"Range {rng}: 206 and the right bytes")
        check(g["ContentRange"] == f"bytes {s}-{e - 1}/{len(data)}", f"Range {rng}: Content-Range")
    small = b"0123456789"
    s3.put_object(Bucket=b, Key="range-small", Body=small)
    g = s3.get_object(Bucket=b, Key="range-small", Range="bytes=2-4")
    check(g["Body"].read() == b"234", "Range on an inline object")
    check(code_of(lambda: s3.get_object(Bucket=b, Key="range", Range="bytes=9999999-"))
          == ("InvalidRange", 416), "unsatisfiable Range: InvalidRange 416")
    # Conditional GETs.
    check(code_of(lambda: s3.get_object(Bucket=b, Key="range", IfNoneMatch=etag))
          == ("304", 304), "If-None-Match with the ETag: 304")
    check(code_of(lambda: s3.get_object(Bucket=b, Key="range", IfMatch='"nope"'))
          == ("PreconditionFailed", 412), "If-Match another ETag: 412")
    g = s3.get_object(Bucket=b, Key="range", IfMatch=etag)
    check(len(g["Body"].read()) == len(data), "If-Match with the ETag: 200")
    lm = g["LastModified"]
    check(code_of(lambda: s3.get_object(Bucket=b, Key="range", IfModifiedSince=lm))
          == ("304", 304), "If-Modified-Since Last-Modified: 304")
    past = lm.replace(year=lm.year - 1)
    check(code_of(lambda: s3.get_object(Bucket=b, Key="range", IfUnmodifiedSince=past))
          == ("PreconditionFailed", 412), "If-Unmodified-Since a year before: 412")
    g = s3.get_object(Bucket=b, Key="range", IfModifiedSince=past)
    check(g["ResponseMetadata"]["HTTPStatusCode"] == 200, "If-Modified-Since a year before: 200")


def test_copy_and_delete_objects(s3, args):
    b = args.bucket
    data = os.urandom(1_200_000)
    s3.put_object(Bucket=b, Key="copy/src", Body=data, Metadata={"k": "v"}, ContentType="a/b")
    r = s3.copy_object(Bucket=b, Key="copy/dst", CopySource={"Bucket": b, "Key": "copy/src"})
    check(r["CopyObjectResult"]["ETag"].strip('"') == hashlib.md5(data).hexdigest(),
          "CopyObject: ETag")
    g = s3.get_object(Bucket=b, Key="copy/dst")
    check(g["Body"].read() == data and g["Metadata"].get("k") == "v", "CopyObject: data and metadata")
    s3.copy_object(Bucket=b, Key="copy/dst2", CopySource=f"{b}/copy/src",
                   MetadataDirective="REPLACE", Metadata={"k": "new"}, ContentType="c/d")
    g = s3.get_object(Bucket=b, Key="copy/dst2")
    check(g["Metadata"].get("k") == "new" and g["ContentType"] == "c/d",
          "CopyObject REPLACE: new metadata")
    # The copy survives the deletion of its source (own block references).
    s3.delete_object(Bucket=b, Key="copy/src")
    check(s3.get_object(Bucket=b, Key="copy/dst")["Body"].read() == data,
          "a copy outlives its source")
    s3.put_object(Bucket=b, Key="copy/inline", Body=b"tiny")
    s3.copy_object(Bucket=b, Key="copy/inline2", CopySource=f"{b}/copy/inline")
    check(s3.get_object(Bucket=b, Key="copy/inline2")["Body"].read() == b"tiny", "copy of an inline object")
    keys = ["copy/dst", "copy/dst2", "copy/inline", "copy/inline2", "copy/absent"]
    r = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in keys]})
    check(sorted(d["Key"] for d in r.get("Deleted", [])) == sorted(keys), "DeleteObjects")
    left = s3.list_objects_v2(Bucket=b, Prefix="copy/").get("KeyCount")
    check(left == 0, "DeleteObjects removed everything")
    s3.put_object(Bucket=b, Key="copy/q", Body=b"q")
    r = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "copy/q"}], "Quiet": True})
    check(not r.get("Deleted") and not r.get("Errors"), "DeleteObjects Quiet: empty answer")


def test_listing(s3, args):
    b = args.bucket
    keys = [f"list/d{d}/f{i:04}" for d in range(3) for i in range(350)] + \
           [f"list/top{i}" for i in range(20)]

    def put(k):
        s3.put_object(Bucket=b, Key=k, Body=k.encode())

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(put, keys))
    # Plain listing over 1,070 keys, by pages.
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix="list/"))
    got = [o["Key"] for p in pages for o in p.get("Contents", [])]
    check(got == sorted(keys), f"ListObjectsV2 over {len(keys)} keys: every key once, in order")
    check(len(pages) == 2, "ListObjectsV2 pages of 1000")
    r = s3.list_objects_v2(Bucket=b, Prefix="list/", MaxKeys=7)
    check(r["KeyCount"] == 7 and r["IsTruncated"] and "NextContinuationToken" in r, "MaxKeys=7")
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix="list/",
                                                              PaginationConfig={"PageSize": 333}))
    got = [o["Key"] for p in pages for o in p.get("Contents", [])]
    check(got == sorted(keys), "ListObjectsV2 with continuation tokens (pages of 333)")
    # Delimiter.
    r = s3.list_objects_v2(Bucket=b, Prefix="list/", Delimiter="/")
    cps = [p["Prefix"] for p in r.get("CommonPrefixes", [])]
    check(cps == ["list/d0/", "list/d1/", "list/d2/"], "CommonPrefixes")
    check([o["Key"] for o in r.get("Contents", [])] == sorted(f"list/top{i}" for i in range(20)),
          "Contents beside CommonPrefixes")
    pages = list(s3.get_paginator("list_objects_v2").paginate(
        Bucket=b, Prefix="list/", Delimiter="/", PaginationConfig={"PageSize": 2}))
    cps = [p["Prefix"] for pg in pages for p in pg.get("CommonPrefixes", [])]
    objs = [o["Key"] for pg in pages for o in pg.get("Contents", [])]
    check(cps == ["list/d0/", "list/d1/", "list/d2/"] and len(objs) == 20,
          "delimiter listing by pages of 2")
    r = s3.list_objects_v2(Bucket=b, Prefix="list/d1/", StartAfter="list/d1/f0345")
    check([o["Key"] for o in r["Contents"]] == [f"list/d1/f{i:04}" for i in range(346, 350)],
          "StartAfter")
    # v1 with markers.
    pages = list(s3.get_paginator("list_objects").paginate(Bucket=b, Prefix="list/",
                                                           PaginationConfig={"PageSize": 400}))
    got = [o["Key"] for p in pages for o in p.get("Contents", [])]
    check(got == sorted(keys), "ListObjects (v1) with markers")
    r = s3.list_objects(Bucket=b, Prefix="list/", Delimiter="/", MaxKeys=1000)
    check(len(r.get("CommonPrefixes", [])) == 3, "ListObjects (v1) with a delimiter")
    # encoding-type=url (asked explicitly, boto3 leaves the keys encoded).
    s3.put_object(Bucket=b, Key="enc/a b&c", Body=b"x")
    r = s3.list_objects_v2(Bucket=b, Prefix="enc/", EncodingType="url")
    check([o["Key"] for o in r["Contents"]] == ["enc/a%20b%26c"], "encoding-type=url")
    s3.delete_object(Bucket=b, Key="enc/a b&c")
    # Clean up with DeleteObjects in batches of 1000.
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]],
                                            "Quiet": True})
    check(s3.list_objects_v2(Bucket=b, Prefix="list/")["KeyCount"] == 0, "listing emptied")


def test_multipart(s3, args):
    b = args.bucket
    key = "mpu/big"
    up = s3.create_multipart_upload(Bucket=b, Key=key, ContentType="x/mpu", Metadata={"m": "1"})
    uid = up["UploadId"]
    ups = s3.list_multipart_uploads(Bucket=b, Prefix="mpu/")
    check([u["UploadId"] for u in ups.get("Uploads", [])] == [uid], "ListMultipartUploads")
    part = 5 * 1024 * 1024
    datas = [os.urandom(part) for _ in range(3)] + [os.urandom(123_456)]
    etags = []
    for i, d in enumerate(datas):
        r = s3.upload_part(Bucket=b, Key=key, UploadId=uid, PartNumber=i + 1, Body=d)
        etags.append(r["ETag"])
    # Part 2 sent again: the new attempt replaces it.
    datas[1] = os.urandom(part)
    etags[1] = s3.upload_part(Bucket=b, Key=key, UploadId=uid, PartNumber=2, Body=datas[1])["ETag"]
    parts = s3.list_parts(Bucket=b, Key=key, UploadId=uid)["Parts"]
    check([(p["PartNumber"], p["ETag"], p["Size"]) for p in parts]
          == [(i + 1, etags[i], len(d)) for i, d in enumerate(datas)], "ListParts")
    check(code_of(lambda: s3.get_object(Bucket=b, Key=key)) == ("NoSuchKey", 404),
          "an upload in progress is not readable")
    pl = [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]
    check(code_of(lambda: s3.complete_multipart_upload(
        Bucket=b, Key=key, UploadId=uid, MultipartUpload={"Parts": [pl[1], pl[0]]}))
        == ("InvalidPartOrder", 400), "InvalidPartOrder")
    check(code_of(lambda: s3.complete_multipart_upload(
        Bucket=b, Key=key, UploadId=uid,
        MultipartUpload={"Parts": [pl[0], {"PartNumber": 9, "ETag": etags[0]}]}))
        == ("InvalidPart", 400), "InvalidPart")
    r = s3.complete_multipart_upload(Bucket=b, Key=key, UploadId=uid,
                                     MultipartUpload={"Parts": pl})
    md5s = b"".join(hashlib.md5(d).digest() for d in datas)
    want = f'"{hashlib.md5(md5s).hexdigest()}-{len(datas)}"'
    check(r["ETag"] == want, "CompleteMultipartUpload ETag md5-of-md5s-N")
    whole = b"".join(datas)
    g = s3.get_object(Bucket=b, Key=key)
    check(g["Body"].read() == whole, "multipart object reads back (4 parts, part 2 re-sent)")
    check(g["ContentType"] == "x/mpu" and g["Metadata"].get("m") == "1", "multipart metadata")
    g = s3.get_object(Bucket=b, Key=key, Range=f"bytes={part - 5}-{part + 5}")
    check(g["Body"].read() == whole[part - 5:part + 6], "Range across a part boundary")
    check(not s3.list_multipart_uploads(Bucket=b, Prefix="mpu/").get("Uploads"),
          "completed upload no longer listed")
    # EntityTooSmall, and abort.
    up2 = s3.create_multipart_upload(Bucket=b, Key="mpu/small")["UploadId"]
    e1 = s3.upload_part(Bucket=b, Key="mpu/small", UploadId=up2, PartNumber=1, Body=b"a" * 1000)["ETag"]
    e2 = s3.upload_part(Bucket=b, Key="mpu/small", UploadId=up2, PartNumber=2, Body=b"b" * 1000)["ETag"]
    check(code_of(lambda: s3.complete_multipart_upload(
        Bucket=b, Key="mpu/small", UploadId=up2,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}))
        == ("EntityTooSmall", 400), "EntityTooSmall")
    # UploadPartCopy from the big object, then a 1-part completion.
    r = s3.upload_part_copy(Bucket=b, Key="mpu/small", UploadId=up2, PartNumber=3,
                            CopySource={"Bucket": b, "Key": key}, CopySourceRange="bytes=10-1000009")
    e3 = r["CopyPartResult"]["ETag"]
    s3.abort_multipart_upload(Bucket=b, Key="mpu/small", UploadId=up2)
    check(code_of(lambda: s3.list_parts(Bucket=b, Key="mpu/small", UploadId=up2))
          == ("NoSuchUpload", 404), "AbortMultipartUpload: NoSuchUpload after")
    check(code_of(lambda: s3.upload_part(Bucket=b, Key=key, UploadId="00" * 32, PartNumber=1,
                                         Body=b"x")) == ("NoSuchUpload", 404), "NoSuchUpload")
    check(e3.strip('"') == hashlib.md5(whole[10:1000010]).hexdigest(), "UploadPartCopy ETag")
    s3.delete_object(Bucket=b, Key=key)


class Stream:
    """A file-like stream of `size` pseudo-random bytes, hashed as it is read
    (nothing of the whole is ever held in memory)."""

    def __init__(self, size, seed):
        self.size = size
        self.block = hashlib.sha512(seed).digest() * 16384  # 1 MiB pattern
        self.seek(0)

    def seek(self, offset, whence=0):
        # botocore hashes the body for the signature, then rewinds it; only
        # a rewind to the start is needed (the SHA-256 restarts with it).
        if (offset, whence) not in ((0, 0), (0, 1), (0, 2)):
            raise OSError("only seek(0) is supported")
        if whence == 0:
            self.left = self.size
            self.pos = 0
            self.sha = hashlib.sha256()
        elif whence == 2:
            self.left = 0
        return self.tell()

    def tell(self):
        return self.size - self.left

    def read(self, n=-1):
        if n is None or n < 0:
            n = self.left
        n = min(n, self.left)
        out = bytearray()
        while len(out) < n:
            take = min(n - len(out), len(self.block) - self.pos)
            out += self.block[self.pos:self.pos + take]
            self.pos = (self.pos + take) % len(self.block)
        self.left -= n
        self.sha.update(out)
        return bytes(out)


def test_big_stream(s3, args):
    b = args.bucket
    size = args.big_mib * 1024 * 1024 + 12345
    src = Stream(size, b"big")
    t = time.time()
    # One PutObject whose body is read from the stream as it is sent.
    s3.put_object(Bucket=b, Key="big/stream", Body=src, ContentLength=size)
    up = time.time() - t
    t = time.time()
    g = s3.get_object(Bucket=b, Key="big/stream")
    sha = hashlib.sha256()
    n = 0
    for chunk in g["Body"].iter_chunks(1 << 20):
        sha.update(chunk)
        n += len(chunk)
    down = time.time() - t
    check(n == size and sha.hexdigest() == src.sha.hexdigest(),
          f"{args.big_mib} MiB streamed PutObject read back, same SHA-256 "
          f"(up {size / up / 2**20:.0f} MiB/s, down {size / down / 2**20:.0f} MiB/s)")
    s3.delete_object(Bucket=b, Key="big/stream")


def test_presigned_and_refusals(s3, args):
    b = args.bucket
    s3.put_object(Bucket=b, Key="pre/x", Body=b"presigned body")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "pre/x"}, ExpiresIn=300)
    with urllib.request.urlopen(url) as r:
        check(r.read() == b"presigned body", "presigned GET URL")
    try:
        urllib.request.urlopen(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))
        check(False, "tampered presigned URL refused")
    except urllib.error.HTTPError as e:
        check(e.code in (400, 403), "tampered presigned URL refused")
    try:
        urllib.request.urlopen(f"{args.endpoint}/{b}/pre/x")
        check(False, "anonymous GET refused")
    except urllib.error.HTTPError as e:
        check(e.code == 403 and b"<Code>AccessDenied</Code>" in e.read(), "anonymous GET: 403 XML")
    bad = client(args, args.key_id, "0" * 64)
    check(code_of(lambda: bad.get_object(Bucket=b, Key="pre/x")) == ("SignatureDoesNotMatch", 403),
          "wrong secret: SignatureDoesNotMatch 403")
    unknown = client(args, "GK" + "0" * 24, "0" * 64)
    check(code_of(lambda: unknown.list_buckets())[1] == 403, "unknown key: 403")
    if args.ro_key_id:
        ro = client(args, args.ro_key_id, args.ro_secret)
        check(ro.get_object(Bucket=b, Key="pre/x")["Body"].read() == b"presigned body",
              "read-only key reads")
        check(code_of(lambda: ro.put_object(Bucket=b, Key="pre/y", Body=b"y")) == ("AccessDenied", 403),
              "read-only key write: AccessDenied 403")
        check(code_of(lambda: ro.delete_object(Bucket=b, Key="pre/x")) == ("AccessDenied", 403),
              "read-only key delete: AccessDenied 403")
        check(code_of(lambda: ro.create_bucket(Bucket="ro-may-not-create")) == ("AccessDenied", 403),
              "key without create-bucket: AccessDenied 403")
    check(code_of(lambda: s3.get_bucket_policy(Bucket=b)) == ("NotImplemented", 501),
          "unsupported operation: NotImplemented 501")
    s3.delete_object(Bucket=b, Key="pre/x")


def test_leave_known_contents(s3, args):
    """Empties the bucket, then leaves three objects (2,005,010 bytes) for
    the caller to check `garage bucket info` and `bucket delete` against."""
    b = args.bucket
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b):
        objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objs:
            s3.delete_objects(Bucket=b, Delete={"Objects": objs, "Quiet": True})
    for u in s3.list_multipart_uploads(Bucket=b).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=b, Key=u["Key"], UploadId=u["UploadId"])
    for key, size in [("left/a", 10), ("left/b", 5000), ("left/c", 2_000_000)]:
        s3.put_object(Bucket=b, Key=key, Body=os.urandom(size))
    check(s3.list_objects_v2(Bucket=b)["KeyCount"] == 3, "three objects left for bucket info")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--region", default="garage")
    p.add_argument("--key-id", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--ro-key-id")
    p.add_argument("--ro-secret")
    p.add_argument("--bucket", default="default")
    p.add_argument("--big-mib", type=int, default=100)
    args = p.parse_args()
    s3 = client(args, args.key_id, args.secret)
    for t in [test_buckets, test_objects, test_ranges_and_conditions, test_copy_and_delete_objects,
              test_listing, test_multipart, test_big_stream, test_presigned_and_refusals,
              test_leave_known_contents]:
        print(f"# {t.__name__}")
        try:
            t(s3, args)
        except Exception as e:  # report and go on with the next group
            check(False, f"{t.__name__} raised {type(e).__name__}: {e}")
    print()
    if FAILS:
        print(f"{len(FAILS)} check(s) failed:")
        for f in FAILS:
            print(f"  {f}")
        sys.exit(1)
    print("all S3 checks passed")


if __name__ == "__main__":
    main()
