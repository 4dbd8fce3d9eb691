#!/usr/bin/env python3
"""End-to-end check of the K2V API of a running node.

Talks to the node over HTTP with its own AWS SigV4 signer (service `k2v`)
and exercises every endpoint: items, causality, polling, the index, the
batch endpoints, range polling, CORS and the authentication errors. Each
check prints one line; the last line is `N passed, M failed`, and the exit
status is non-zero when any check failed.

Standard library only (Python 3.11). Every run works under its own random
partition-key prefix, so the script can run many times against one node.

    python3 k2v_test.py --endpoint http://127.0.0.1:3904 --region garage \\
        --key-id GK... --secret ... --bucket default

Each option can also come from the environment: K2V_ENDPOINT, K2V_REGION,
K2V_KEY_ID, K2V_SECRET, K2V_BUCKET.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import sys
import threading
import time
import traceback
import urllib.parse

SERVICE = "k2v"
TOKEN_HEADER = "x-garage-causality-token"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


# --------------------------------------------------------------------------
# SigV4
# --------------------------------------------------------------------------


def _quote(s: str | bytes, safe: str = "") -> str:
    """AWS UriEncode: unreserved characters kept, everything else %XX."""
    return urllib.parse.quote(s, safe=safe)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date8: str, region: str, service: str) -> bytes:
    k = _hmac(("AWS4" + secret).encode("utf-8"), date8)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def canonical_query(pairs: list[tuple[str, str | None]]) -> str:
    enc = sorted((_quote(k), _quote(v or "")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in enc)


def wire_query(pairs: list[tuple[str, str | None]]) -> str:
    parts = []
    for k, v in pairs:
        parts.append(_quote(k) if v is None else f"{_quote(k)}={_quote(v)}")
    return "&".join(parts)


def canonical_uri(wire_path: str) -> str:
    """K2V (like every non-S3 AWS service) encodes the wire path once more."""
    return _quote(wire_path, safe="/")


def amz_now(offset_s: float = 0.0) -> tuple[str, str]:
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_s)
    return t.strftime("%Y%m%dT%H%M%SZ"), t.strftime("%Y%m%d")


def sign_headers(
    method: str,
    wire_path: str,
    query: list[tuple[str, str | None]],
    headers: dict[str, str],
    payload_hash: str,
    key_id: str,
    secret: str,
    region: str,
    service: str = SERVICE,
    date_offset_s: float = 0.0,
    omit_sha_header: bool = False,
) -> dict[str, str]:
    """Adds x-amz-date, x-amz-content-sha256 and Authorization to `headers`
    (which must already hold `host`, and `content-type` if any).
    `omit_sha_header` leaves x-amz-content-sha256 out (a broken request)."""
    amz_date, date8 = amz_now(date_offset_s)
    headers = dict(headers)
    headers["x-amz-date"] = amz_date
    if not omit_sha_header:
        headers["x-amz-content-sha256"] = payload_hash
    to_sign = sorted(h for h in headers if h in ("host", "x-amz-date", "x-amz-content-sha256", "content-type"))
    canon_headers = "".join(f"{h}:{' '.join(headers[h].split())}\n" for h in to_sign)
    signed = ";".join(to_sign)
    creq = "\n".join(
        [method, canonical_uri(wire_path), canonical_query(query), canon_headers, signed, payload_hash]
    )
    scope = f"{date8}/{region}/{service}/aws4_request"
    sts = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode("utf-8")).hexdigest()]
    )
    sig = hmac.new(signing_key(secret, date8, region, service), sts.encode("utf-8"), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed}, Signature={sig}"
    )
    return headers


def presign_query(
    method: str,
    wire_path: str,
    query: list[tuple[str, str | None]],
    host: str,
    key_id: str,
    secret: str,
    region: str,
    expires: int,
    date_offset_s: float = 0.0,
) -> list[tuple[str, str | None]]:
    """The query of a presigned URL (only `host` signed, payload unsigned)."""
    amz_date, date8 = amz_now(date_offset_s)
    scope = f"{date8}/{region}/{SERVICE}/aws4_request"
    q = list(query) + [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", f"{key_id}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    creq = "\n".join(
        [method, canonical_uri(wire_path), canonical_query(q), f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"]
    )
    sts = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode("utf-8")).hexdigest()]
    )
    sig = hmac.new(signing_key(secret, date8, region, SERVICE), sts.encode("utf-8"), hashlib.sha256).hexdigest()
    return q + [("X-Amz-Signature", sig)]


# --------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------


class Resp:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, elapsed: float):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def token(self) -> str | None:
        return self.headers.get(TOKEN_HEADER)

    @property
    def ctype(self) -> str:
        return self.headers.get("content-type", "")

    def __repr__(self) -> str:
        b = self.body[:300]
        return f"HTTP {self.status} ct={self.ctype!r} token={self.token!r} body={b!r}"


class Client:
    def __init__(self, endpoint: str, region: str, key_id: str, secret: str, bucket: str):
        u = urllib.parse.urlsplit(endpoint)
        if u.scheme not in ("http", "https"):
            raise SystemExit(f"unsupported endpoint {endpoint!r}: use http://host:port")
        self.scheme = u.scheme
        self.netloc = u.netloc
        self.host_header = u.netloc
        self.region = region
        self.key_id = key_id
        self.secret = secret
        self.bucket = bucket

    def path(self, pk: str | None = None, bucket: str | None = None) -> str:
        p = "/" + _quote(bucket if bucket is not None else self.bucket)
        if pk is not None:
            p += "/" + _quote(pk)
        return p

    def _conn(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.netloc, timeout=timeout)
        return http.client.HTTPConnection(self.netloc, timeout=timeout)

    def request(
        self,
        method: str,
        pk: str | None = None,
        query: list[tuple[str, str | None]] | None = None,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        *,
        bucket: str | None = None,
        sign: bool = True,
        secret: str | None = None,
        key_id: str | None = None,
        region: str | None = None,
        service: str = SERVICE,
        payload_hash: str | None = None,
        date_offset_s: float = 0.0,
        omit_sha_header: bool = False,
        timeout: float = 30.0,
    ) -> Resp:
        query = list(query or [])
        if isinstance(body, str):
            body = body.encode("utf-8")
        data = body or b""
        wire_path = self.path(pk, bucket)
        h = {"host": self.host_header}
        for k, v in (headers or {}).items():
            h[k.lower()] = v
        if sign:
            ph = payload_hash if payload_hash is not None else hashlib.sha256(data).hexdigest()
            h = sign_headers(
                method,
                wire_path,
                query,
                h,
                ph,
                key_id or self.key_id,
                secret if secret is not None else self.secret,
                region or self.region,
                service,
                date_offset_s,
                omit_sha_header,
            )
        target = wire_path + ("?" + wire_query(query) if query else "")
        return self.raw(method, target, h, body, timeout)

    def raw(self, method: str, target: str, headers: dict[str, str], body: bytes | None, timeout: float = 30.0) -> Resp:
        conn = self._conn(timeout)
        t0 = time.monotonic()
        try:
            conn.request(method, target, body=body if body else None, headers=headers)
            r = conn.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            return Resp(r.status, hdrs, data, time.monotonic() - t0)
        finally:
            conn.close()

    # convenience wrappers ------------------------------------------------

    def put(self, pk: str, sk: str, value: bytes, token: str | None = None, **kw) -> Resp:
        h = {TOKEN_HEADER: token} if token else {}
        return self.request("PUT", pk, [("sort_key", sk)], value, h, **kw)

    def get(self, pk: str, sk: str, accept: str | None = None, **kw) -> Resp:
        h = {"accept": accept} if accept else {}
        return self.request("GET", pk, [("sort_key", sk)], None, h, **kw)

    def delete(self, pk: str, sk: str, token: str | None = None, **kw) -> Resp:
        h = {TOKEN_HEADER: token} if token else {}
        return self.request("DELETE", pk, [("sort_key", sk)], None, h, **kw)

    def poll(self, pk: str, sk: str, token: str, timeout_s: int | None, accept: str | None = None) -> Resp:
        q = [("sort_key", sk), ("causality_token", token)]
        if timeout_s is not None:
            q.append(("timeout", str(timeout_s)))
        h = {"accept": accept} if accept else {}
        return self.request("GET", pk, q, None, h, timeout=(timeout_s or 300) + 30)

    def insert_batch(self, items: list[dict]) -> Resp:
        return self.request("POST", None, [], json.dumps(items), {"content-type": "application/json"})

    def read_batch(self, searches: list[dict], method: str = "POST") -> Resp:
        q = [("search", None)] if method == "POST" else []
        return self.request(method, None, q, json.dumps(searches), {"content-type": "application/json"})

    def delete_batch(self, searches: list[dict]) -> Resp:
        return self.request(
            "POST", None, [("delete", None)], json.dumps(searches), {"content-type": "application/json"}
        )

    def read_index(self, **params) -> Resp:
        q = [(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.items() if v is not None]
        return self.request("GET", None, q)

    def poll_range(self, pk: str, body: dict, method: str = "POST", http_timeout: float = 60.0) -> Resp:
        return self.request(
            method,
            pk,
            [("poll_range", None)],
            json.dumps(body),
            {"content-type": "application/json"},
            timeout=http_timeout,
        )


# --------------------------------------------------------------------------
# Check bookkeeping
# --------------------------------------------------------------------------


class Abort(Exception):
    """Stops the current section (a check it depends on failed)."""


class Checker:
    def __init__(self, fail_fast: bool, verbose: bool):
        self.passed = 0
        self.failed = 0
        self.failures: list[str] = []
        self.fail_fast = fail_fast
        self.verbose = verbose

    def check(self, name: str, cond: bool, detail: object = "", fatal: bool = False) -> bool:
        if cond:
            self.passed += 1
            print(f"ok   {self.passed + self.failed:3d} {name}", flush=True)
            return True
        self.failed += 1
        msg = f"FAIL {self.passed + self.failed:3d} {name}: {detail}"
        self.failures.append(msg)
        print(msg, flush=True)
        if self.fail_fast:
            raise SystemExit(self.summary())
        if fatal:
            raise Abort(name)
        return False

    def eq(self, name: str, got, want, fatal: bool = False) -> bool:
        return self.check(name, got == want, f"got {got!r}, want {want!r}", fatal)

    def status(self, name: str, r: Resp, want: int, fatal: bool = False) -> bool:
        return self.check(name, r.status == want, f"want HTTP {want}, got {r!r}", fatal)

    def error(self, name: str, r: Resp, status: int, code: str | None = None) -> bool:
        """An error answer: status, JSON content type, and the code if given."""
        try:
            body = r.json()
        except Exception:
            body = None
        ok = r.status == status and r.ctype.startswith("application/json") and isinstance(body, dict)
        if ok and code is not None:
            ok = body.get("code") == code
        want = f"HTTP {status}" + (f" code {code}" if code else "") + " (JSON body)"
        return self.check(name, ok, f"want {want}, got {r!r}")

    def summary(self) -> int:
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def token_is_well_formed(tok: str) -> bool:
    """URL-safe base64 without padding of checksum:u64be + (node,time)* with
    the XOR checksum."""
    if not tok or "=" in tok or "+" in tok or "/" in tok:
        return False
    try:
        raw = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
    except Exception:
        return False
    if len(raw) < 8 or (len(raw) - 8) % 16:
        return False
    chk = int.from_bytes(raw[:8], "big")
    x = 0
    for i in range(8, len(raw), 8):
        x ^= int.from_bytes(raw[i : i + 8], "big")
    return x == chk


def make_token(pairs: list[tuple[int, int]], checksum: int | None = None) -> str:
    x = 0
    for n, t in pairs:
        x ^= n ^ t
    raw = (x if checksum is None else checksum).to_bytes(8, "big")
    for n, t in sorted(pairs):
        raw += n.to_bytes(8, "big") + t.to_bytes(8, "big")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def later(delay: float, fn, errors: list) -> threading.Thread:
    """Runs `fn` in a thread after `delay` seconds, recording exceptions."""

    def run():
        time.sleep(delay)
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def sks(result: dict) -> list[str]:
    return [it["sk"] for it in result.get("items", [])]


QUERY_FIELDS = ["partitionKey", "prefix", "start", "end", "limit", "reverse", "singleItem", "conflictsOnly", "tombstones"]
QUERY_DEFAULTS = {"prefix": None, "start": None, "end": None, "limit": None, "reverse": False,
                  "singleItem": False, "conflictsOnly": False, "tombstones": False}


# --------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------


class Suite:
    def __init__(self, c: Client, ck: Checker, run_id: str, max_body: int):
        self.c = c
        self.ck = ck
        self.run = run_id
        self.max_body = max_body

    def pk(self, name: str) -> str:
        return f"{self.run}-{name}"

    # ---------------------------------------------------------------- CORS
    def cors(self):
        c, ck = self.c, self.ck
        r = c.request(
            "OPTIONS",
            None,
            sign=False,
            headers={"origin": "http://example.com", "access-control-request-method": "PUT"},
        )
        ck.status("OPTIONS /bucket (preflight, unsigned) -> 200", r, 200)
        ck.check(
            "OPTIONS answer carries access-control-allow-origin",
            "access-control-allow-origin" in r.headers,
            r.headers,
        )
        r = c.request("OPTIONS", "somepk", [("sort_key", "x")], sign=False)
        ck.status("OPTIONS /bucket/pk -> 200", r, 200)

    # ---------------------------------------------------------------- auth
    def auth(self):
        c, ck = self.c, self.ck
        pk = self.pk("auth")
        r = c.get(pk, "x", sign=False)
        ck.error("unsigned request -> 403 AccessDenied", r, 403, "AccessDenied")
        r = c.get(pk, "x", secret=c.secret + "x")
        ck.error("wrong secret -> 403 AccessDenied", r, 403, "AccessDenied")
        r = c.get(pk, "x", key_id="GK00000000000000000000000")
        ck.error("unknown key id -> 403 AccessDenied", r, 403, "AccessDenied")
        r = c.get(pk, "x", bucket=f"no-such-bucket-{self.run}")
        ck.error("unknown bucket -> 404 NoSuchBucket", r, 404, "NoSuchBucket")
        r = c.put(pk, "x", b"real body", payload_hash=hashlib.sha256(b"other body").hexdigest())
        ck.error("x-amz-content-sha256 not matching the body -> 400 InvalidDigest", r, 400, "InvalidDigest")
        r = c.get(pk, "x", region="us-east-1")
        ck.error("scope with another region -> 400 AuthorizationHeaderMalformed", r, 400,
                 "AuthorizationHeaderMalformed")
        r = c.get(pk, "x", service="s3")
        ck.error("scope with another service -> 400 AuthorizationHeaderMalformed", r, 400,
                 "AuthorizationHeaderMalformed")
        r = c.get(pk, "x", date_offset_s=-20 * 60)
        ck.error("date 20 minutes in the past -> 403 RequestTimeTooSkewed", r, 403, "RequestTimeTooSkewed")
        r = c.get(pk, "x", date_offset_s=20 * 60)
        ck.error("date 20 minutes in the future -> 403 RequestTimeTooSkewed", r, 403, "RequestTimeTooSkewed")
        r = c.get(pk, "x", date_offset_s=-10 * 60)
        ck.error("date 10 minutes in the past is accepted (-> 404 NoSuchKey)", r, 404, "NoSuchKey")
        r = c.get(pk, "x", omit_sha_header=True)
        ck.error("header-signed request without x-amz-content-sha256 -> 400", r, 400)
        r = c.put(pk, "unsigned-payload", b"up", payload_hash="UNSIGNED-PAYLOAD")
        ck.status("PUT with x-amz-content-sha256: UNSIGNED-PAYLOAD -> 204", r, 204)
        r = c.get(pk, "unsigned-payload", accept="application/octet-stream")
        ck.check("value written with UNSIGNED-PAYLOAD reads back", r.status == 200 and r.body == b"up", r)

        # presigned URL (query signature)
        wire = c.path(pk)
        q = presign_query("GET", wire, [("sort_key", "unsigned-payload")], c.host_header, c.key_id, c.secret,
                          c.region, 300)
        r = c.raw("GET", wire + "?" + wire_query(q), {"host": c.host_header, "accept": "application/octet-stream"},
                  None)
        ck.check("presigned GET URL -> 200 with the value", r.status == 200 and r.body == b"up", r)
        q = presign_query("GET", wire, [("sort_key", "unsigned-payload")], c.host_header, c.key_id, c.secret,
                          c.region, 60, date_offset_s=-3600)
        r = c.raw("GET", wire + "?" + wire_query(q), {"host": c.host_header}, None)
        ck.error("expired presigned URL -> 403", r, 403)
        q = presign_query("GET", wire, [("sort_key", "unsigned-payload")], c.host_header, c.key_id, c.secret,
                          c.region, 300, date_offset_s=3600)
        r = c.raw("GET", wire + "?" + wire_query(q), {"host": c.host_header}, None)
        ck.error("presigned URL dated one hour ahead (not yet valid) -> 403", r, 403)
        q = presign_query("GET", wire, [("sort_key", "unsigned-payload")], c.host_header, c.key_id, c.secret,
                          c.region, 7 * 86400 + 1)
        r = c.raw("GET", wire + "?" + wire_query(q), {"host": c.host_header}, None)
        ck.check("presigned URL with X-Amz-Expires above 7 days is refused (400/403)",
                 r.status in (400, 403), r)

    # ------------------------------------------------------- item + Accept
    def items(self):
        c, ck = self.c, self.ck
        pk = self.pk("item")
        r = c.put(pk, "a", b"hello")
        ck.status("InsertItem -> 204", r, 204, fatal=True)

        r = c.get(pk, "a")
        ok = r.status == 200 and r.ctype.startswith("application/json")
        ck.check("ReadItem without Accept -> 200 application/json", ok, r)
        ck.eq("ReadItem JSON body is an array of base64 values", r.json() if ok else None, [b64(b"hello")])
        ck.check("ReadItem sets a well-formed X-Garage-Causality-Token", token_is_well_formed(r.token or ""), r)

        r = c.get(pk, "a", accept="application/json")
        ck.check("Accept: application/json -> JSON array",
                 r.status == 200 and r.ctype.startswith("application/json") and r.json() == [b64(b"hello")], r)

        r = c.get(pk, "a", accept="application/octet-stream")
        ck.check("Accept: application/octet-stream -> 200 raw bytes",
                 r.status == 200 and r.body == b"hello" and r.ctype.startswith("application/octet-stream"), r)
        ck.check("raw answer carries the causality token", bool(r.token), r)

        r = c.get(pk, "a", accept="application/json, application/octet-stream")
        ck.check("Accept both, one value -> raw bytes", r.status == 200 and r.body == b"hello", r)

        r = c.get(pk, "a", accept="*/*")
        ck.check("Accept: */* counts as both -> raw bytes", r.status == 200 and r.body == b"hello", r)

        r = c.get(pk, "a", accept="application/json;q=0.9, text/html")
        ck.check("Accept with media-type parameters (;q=0.9) -> JSON (parameters ignored)",
                 r.status == 200 and r.ctype.startswith("application/json"), r)

        r = c.get(pk, "a", accept="text/plain")
        ck.error("Accept: text/plain -> 406", r, 406)

        missing_path = c.path(pk)
        r = c.get(pk, "does-not-exist")
        ck.error("ReadItem of a missing item -> 404 NoSuchKey", r, 404, "NoSuchKey")
        try:
            body = r.json()
        except Exception:
            body = {}
        ck.check(
            "error body has code/message/region/path",
            all(isinstance(body.get(f), str) for f in ("code", "message", "region", "path"))
            and body.get("region") == c.region
            and body.get("path") in (missing_path, urllib.parse.unquote(missing_path)),
            body,
        )

        r = c.request("GET", pk, [("sort_key", "")])
        ck.error("empty sort_key= -> 400", r, 400)
        r = c.request("GET", pk, [])
        ck.error("GET on a partition key without sort_key -> 400", r, 400)
        r = c.get(pk.encode() + b"\xff", "a")
        ck.error("partition key that is not UTF-8 (%FF) -> 400", r, 400)
        r = c.request("GET", pk, [("sort_key", b"\xfe\xff")])
        ck.error("sort key that is not UTF-8 (%FE%FF) -> 400", r, 400)

        blob = bytes(range(256)) * 4
        r = c.put(pk, "binary", blob)
        ck.status("InsertItem of 1 KiB binary value -> 204", r, 204)
        r = c.get(pk, "binary", accept="application/octet-stream")
        ck.check("binary value round-trips byte for byte", r.status == 200 and r.body == blob, r)
        r = c.get(pk, "binary")
        ck.check("binary value as JSON is standard base64 with padding",
                 r.status == 200 and r.json() == [base64.b64encode(blob).decode()], r)

        r = c.put(pk, "empty", b"")
        ck.status("InsertItem of an empty value -> 204", r, 204)
        r = c.get(pk, "empty")
        ck.check("empty value reads as [\"\"]", r.status == 200 and r.json() == [""], r)

        # keys with spaces, unicode, slash and query metacharacters
        upk = f"{self.run} pärtition/ключ 🔑"
        usk = "sört kéy & = + ? # %20 日本"
        r = c.put(upk, usk, "välue ✓".encode())
        ck.status("InsertItem with spaces/unicode/slash in pk and sk -> 204", r, 204)
        r = c.get(upk, usk, accept="application/octet-stream")
        ck.check("unicode keys round-trip (ReadItem)", r.status == 200 and r.body == "välue ✓".encode(), r)
        r = c.read_batch([{"partitionKey": upk}])
        ok = r.status == 200 and r.json()[0]["partitionKey"] == upk and sks(r.json()[0]) == [usk]
        ck.check("unicode keys round-trip (ReadBatch pk and sk)", ok, r)

        # sort keys are ordered by their UTF-8 bytes
        opk = self.pk("order")
        order = ["Z", "a", "~", "é", "日"]
        c.insert_batch([{"pk": opk, "sk": k, "ct": None, "v": b64(b"")} for k in reversed(order)])
        r = c.read_batch([{"partitionKey": opk}])
        ck.eq("sort keys are ordered by UTF-8 bytes", sks(r.json()[0]) if r.status == 200 else r, order)

    # ---------------------------------------------------------------- DVVS
    def dvvs(self):
        c, ck = self.c, self.ck
        pk = self.pk("dvvs")
        ck.status("first write without token -> 204", c.put(pk, "k", b"v1"), 204, fatal=True)
        ck.status("second write without token -> 204", c.put(pk, "k", b"v2"), 204, fatal=True)
        r = c.get(pk, "k")
        ck.eq("two writes without token -> two concurrent values, insertion order",
              r.json() if r.status == 200 else r, [b64(b"v1"), b64(b"v2")])
        t2 = r.token

        r = c.get(pk, "k", accept="application/octet-stream")
        ck.check("concurrent values with only octet-stream accepted -> 409, token set, empty body",
                 r.status == 409 and bool(r.token) and r.body == b"", r)
        r = c.get(pk, "k", accept="application/octet-stream, application/json")
        ck.check("concurrent values with both accepted -> JSON array",
                 r.status == 200 and r.json() == [b64(b"v1"), b64(b"v2")], r)

        ck.status("write with the read token -> 204", c.put(pk, "k", b"v3", token=t2), 204, fatal=True)
        r = c.get(pk, "k")
        ck.eq("write with token supersedes the values it saw", r.json() if r.status == 200 else r, [b64(b"v3")])
        t3 = r.token

        # two writers from the same token: both survive
        c.put(pk, "k", b"v4", token=t3)
        c.put(pk, "k", b"v5", token=t3)
        r = c.get(pk, "k")
        ck.eq("two writes from the same token stay concurrent", r.json() if r.status == 200 else r,
              [b64(b"v4"), b64(b"v5")])
        t5 = r.token

        r = c.delete(pk, "k")
        ck.error("DeleteItem without causality token -> 400", r, 400)
        r = c.delete(pk, "k", token="!!not base64!!")
        ck.error("DeleteItem with a malformed token -> 400 CausalityToken", r, 400, "CausalityToken")

        r = c.delete(pk, "k", token=t5)
        ck.status("DeleteItem with token -> 204", r, 204)
        r = c.get(pk, "k")
        ck.eq("deleted item reads as [null]", r.json() if r.status == 200 else r, [None])
        r = c.get(pk, "k", accept="application/octet-stream")
        ck.check("deleted item with octet-stream -> 204 with token and Content-Type application/octet-stream",
                 r.status == 204 and bool(r.token) and r.ctype.startswith("application/octet-stream"), r)

        # a value and a later concurrent delete through the same node: [value, null]
        c.put(pk, "vd", b"a")
        ta = c.get(pk, "vd").token
        c.put(pk, "vd", b"b")
        c.delete(pk, "vd", token=ta)
        r = c.get(pk, "vd")
        ck.eq("value + concurrent delete read as [value, null]", r.json() if r.status == 200 else r,
              [b64(b"b"), None])

        # bad tokens on writes
        r = c.put(pk, "k", b"x", token="%%%")
        ck.error("InsertItem with a token that is not base64 -> 400 CausalityToken", r, 400, "CausalityToken")
        r = c.put(pk, "k", b"x", token=make_token([(1, 2)], checksum=0))
        ck.error("InsertItem with a token with wrong checksum -> 400 CausalityToken", r, 400, "CausalityToken")
        r = c.put(pk, "k", b"x", token=base64.urlsafe_b64encode(b"\x00" * 13).decode().rstrip("="))
        ck.error("InsertItem with a token of bad length -> 400 CausalityToken", r, 400, "CausalityToken")

    # ------------------------------------------------------------ PollItem
    def poll_item(self):
        c, ck = self.c, self.ck
        pk = self.pk("poll")
        c.put(pk, "p", b"one")
        t1 = c.get(pk, "p").token
        ck.check("token for polling", bool(t1), t1, fatal=True)
        c.put(pk, "p", b"two", token=t1)

        r = c.poll(pk, "p", t1, 10)
        ck.check("PollItem with an older token answers at once with the new value",
                 r.status == 200 and r.json() == [b64(b"two")] and r.elapsed < 3, f"{r!r} after {r.elapsed:.2f}s")
        t2 = r.token

        errors: list = []
        th = later(0.5, lambda: c.put(pk, "p", b"three", token=t2), errors)
        r = c.poll(pk, "p", t2, 10)
        th.join()
        ck.check("PollItem wakes up on a concurrent write (0.5 s later) with the new value",
                 r.status == 200 and r.json() == [b64(b"three")] and 0.3 < r.elapsed < 8 and not errors,
                 f"{r!r} after {r.elapsed:.2f}s, thread errors {errors}")
        t3 = r.token

        r = c.poll(pk, "p", t3, 1)
        ck.check("PollItem timeout=1 with no change -> 304 after ~1 s",
                 r.status == 304 and 0.8 < r.elapsed < 5, f"{r!r} after {r.elapsed:.2f}s")

        c.put(pk, "p", b"raw", token=t3)
        r = c.poll(pk, "p", t3, 5, accept="application/octet-stream")
        ck.check("PollItem honours Accept: application/octet-stream", r.status == 200 and r.body == b"raw", r)
        t4 = r.token

        errors = []
        th = later(0.5, lambda: c.delete(pk, "p", token=t4), errors)
        r = c.poll(pk, "p", t4, 10)
        th.join()
        ck.check("PollItem wakes up on a delete and returns [null]",
                 r.status == 200 and r.json() == [None] and not errors, f"{r!r}, thread errors {errors}")

        r = c.poll(pk, "p", "not*a*token", 1)
        ck.error("PollItem with a malformed token -> 400 CausalityToken", r, 400, "CausalityToken")

    # ------------------------------------------------------ InsertBatch / ReadBatch
    def batches(self):
        c, ck = self.c, self.ck
        pk = self.pk("range")
        keys = ["a/1", "a/2", "a/3", "b/1", "b/2", "c"]
        r = c.insert_batch([{"pk": pk, "sk": k, "ct": None, "v": b64(k.encode())} for k in keys])
        ck.status("InsertBatch of 6 items -> 204", r, 204, fatal=True)

        r = c.read_batch([{"partitionKey": pk}])
        ck.status("ReadBatch (POST ?search) -> 200", r, 200, fatal=True)
        res = r.json()
        ck.check("ReadBatch answers one result per search", isinstance(res, list) and len(res) == 1, res,
                 fatal=True)
        ck.eq("full range, sorted by key", sks(res[0]), keys)
        ck.eq("values are base64, ct is a token",
              [(it["v"], token_is_well_formed(it["ct"])) for it in res[0]["items"]],
              [([b64(k.encode())], True) for k in keys])
        ck.check("no limit -> more false, nextStart null",
                 res[0].get("more") is False and res[0].get("nextStart", "x") is None, res[0])
        echo_ok = all(f in res[0] for f in QUERY_FIELDS) and all(
            res[0][f] == v for f, v in QUERY_DEFAULTS.items()) and res[0]["partitionKey"] == pk
        ck.check("result echoes every query field with defaults", echo_ok, res[0])

        r2 = c.read_batch([{"partitionKey": pk}], method="SEARCH")
        ck.check("SEARCH /bucket gives the same answer as POST ?search",
                 r2.status == 200 and r2.json() == res, r2)

        searches = [
            {"partitionKey": pk, "prefix": "a/"},
            {"partitionKey": pk, "start": "a/2", "end": "b/2"},
            {"partitionKey": pk, "limit": 2},
            {"partitionKey": pk, "prefix": "a/", "limit": 3},
            {"partitionKey": pk, "start": "b/1", "reverse": True},
            {"partitionKey": pk, "start": "b/1", "end": "a/2", "reverse": True},
            {"partitionKey": pk, "prefix": "a/", "reverse": True},
            {"partitionKey": pk, "start": "b/1", "singleItem": True},
            {"partitionKey": pk, "start": "a/", "end": "b/", "limit": 3},
            {"partitionKey": pk, "prefix": "b/", "start": "b/2"},
            {"partitionKey": pk, "reverse": True, "limit": 2},
            {"partitionKey": pk, "start": "zzz", "singleItem": True},
        ]
        r = c.read_batch(searches)
        ck.status("ReadBatch with 12 searches -> 200", r, 200, fatal=True)
        res = r.json()
        ck.eq("12 results", len(res), len(searches), fatal=True)
        ck.eq("prefix a/", sks(res[0]), ["a/1", "a/2", "a/3"])
        ck.eq("start inclusive, end exclusive", sks(res[1]), ["a/2", "a/3", "b/1"])
        ck.check("limit 2 -> 2 items, more true, nextStart = first key not returned",
                 sks(res[2]) == ["a/1", "a/2"] and res[2]["more"] is True and res[2]["nextStart"] == "a/3", res[2])
        ck.check("limit equal to the keys left -> more false",
                 sks(res[3]) == ["a/1", "a/2", "a/3"] and res[3]["more"] is False and res[3]["nextStart"] is None,
                 res[3])
        ck.eq("reverse from start (inclusive) downwards", sks(res[4]), ["b/1", "a/3", "a/2", "a/1"])
        ck.eq("reverse with end (exclusive) below start", sks(res[5]), ["b/1", "a/3"])
        ck.eq("reverse with prefix and no start begins at the prefix's last key", sks(res[6]),
              ["a/3", "a/2", "a/1"])
        ck.check("singleItem returns just the item at start",
                 sks(res[7]) == ["b/1"] and res[7]["items"][0]["v"] == [b64(b"b/1")] and res[7]["singleItem"] is True,
                 res[7])
        ck.check("listing that stops exactly at end -> more false",
                 sks(res[8]) == ["a/1", "a/2", "a/3"] and res[8]["more"] is False, res[8])
        ck.eq("prefix with start inside it", sks(res[9]), ["b/2"])
        ck.check("reverse with limit -> nextStart is the next key downwards",
                 sks(res[10]) == ["c", "b/2"] and res[10]["more"] is True and res[10]["nextStart"] == "b/1", res[10])
        ck.eq("singleItem on a missing key -> no items", sks(res[11]), [])
        ck.check("fields echoed as given (limit, reverse, start, end)",
                 res[5]["start"] == "b/1" and res[5]["end"] == "a/2" and res[5]["reverse"] is True
                 and res[2]["limit"] == 2 and res[0]["prefix"] == "a/", res)

        # conflicts and tombstones
        c.put(pk, "c", b"c-concurrent")
        tok_b2 = next(it["ct"] for it in c.read_batch([{"partitionKey": pk, "start": "b/2", "singleItem": True}])
                      .json()[0]["items"])
        r = c.insert_batch([{"pk": pk, "sk": "b/2", "ct": tok_b2, "v": None}])
        ck.status("InsertBatch with v: null (tombstone) -> 204", r, 204)
        r = c.read_batch([
            {"partitionKey": pk, "conflictsOnly": True},
            {"partitionKey": pk},
            {"partitionKey": pk, "tombstones": True, "prefix": "b/"},
            {"partitionKey": pk, "start": "b/2", "singleItem": True},
            {"partitionKey": pk, "start": "b/2", "singleItem": True, "tombstones": True},
        ])
        res = r.json() if r.status == 200 else [{}] * 5
        ck.check("conflictsOnly -> only the item with two values",
                 sks(res[0]) == ["c"] and res[0]["items"][0]["v"] == [b64(b"c"), b64(b"c-concurrent")]
                 and res[0]["conflictsOnly"] is True, res[0])
        ck.eq("deleted items hidden by default", sks(res[1]), ["a/1", "a/2", "a/3", "b/1", "c"])
        ck.check("tombstones: true -> deleted item listed with [null]",
                 sks(res[2]) == ["b/1", "b/2"] and res[2]["items"][1]["v"] == [None] and res[2]["tombstones"] is True,
                 res[2])
        ck.eq("singleItem on a deleted item without tombstones -> nothing", sks(res[3]), [])
        ck.eq("singleItem on a deleted item with tombstones -> [null]",
              [it["v"] for it in res[4].get("items", [])], [[None]])

        # token from ReadBatch usable as a header token
        ct_c = res[0]["items"][0]["ct"] if res[0].get("items") else ""
        c.put(pk, "c", b"c-resolved", token=ct_c)
        r = c.get(pk, "c")
        ck.eq("ReadBatch ct works as X-Garage-Causality-Token", r.json() if r.status == 200 else r,
              [b64(b"c-resolved")])

        # invalid inputs
        r = c.read_batch([{"partitionKey": pk, "start": "b/2", "singleItem": True, "limit": 3}])
        ck.error("singleItem with limit -> 400", r, 400)
        r = c.read_batch([{"partitionKey": pk, "prefix": "a/", "start": "b/1"}])
        ck.error("start not starting with prefix -> 400", r, 400)
        r = c.read_batch([{"prefix": "a/"}])
        ck.error("search without partitionKey -> 400", r, 400)
        r = c.request("POST", None, [("search", None)], b"{not json", {"content-type": "application/json"})
        ck.error("ReadBatch with malformed JSON -> 400", r, 400)
        r = c.insert_batch([{"pk": pk, "sk": "x", "ct": None, "v": "@@not base64@@"}])
        ck.error("InsertBatch with a value that is not base64 -> 400", r, 400)
        r = c.insert_batch([{"pk": pk, "sk": "x", "ct": "%%%", "v": b64(b"x")}])
        ck.error("InsertBatch with a bad ct -> 400 CausalityToken", r, 400, "CausalityToken")
        r = c.request("POST", None, [], b"[{]", {"content-type": "application/json"})
        ck.error("InsertBatch with malformed JSON -> 400", r, 400)

    # ---------------------------------------------------------- DeleteBatch
    def delete_batch(self):
        c, ck = self.c, self.ck
        pk = self.pk("del")
        keys = ["a/1", "a/2", "a/3", "b/1", "b/2", "c"]
        c.insert_batch([{"pk": pk, "sk": k, "ct": None, "v": b64(b"x")} for k in keys])
        r = c.delete_batch([
            {"partitionKey": pk, "prefix": "a/"},
            {"partitionKey": pk, "start": "c", "singleItem": True},
            {"partitionKey": pk, "start": "b/2", "end": "c"},
            {"partitionKey": pk, "start": "zz", "singleItem": True},
        ])
        ck.status("DeleteBatch (POST ?delete) -> 200", r, 200, fatal=True)
        res = r.json()
        ck.eq("deletedItems per search", [x.get("deletedItems") for x in res], [3, 1, 1, 0])
        ck.check("DeleteBatch echoes its query fields",
                 res[0].get("partitionKey") == pk and res[0].get("prefix") == "a/"
                 and res[1].get("singleItem") is True and res[2].get("end") == "c", res)
        r = c.read_batch([{"partitionKey": pk}, {"partitionKey": pk, "tombstones": True}])
        res = r.json()
        ck.eq("only the untouched item remains", sks(res[0]), ["b/1"])
        ck.check("deleted items are tombstones",
                 sks(res[1]) == keys and all(it["v"] == [None] for it in res[1]["items"] if it["sk"] != "b/1"), res[1])
        r = c.delete_batch([{"partitionKey": pk}])
        ck.eq("DeleteBatch of the whole partition counts only live items",
              [x.get("deletedItems") for x in r.json()] if r.status == 200 else r, [1])
        r = c.delete_batch([{"partitionKey": pk, "prefix": "a/", "singleItem": True, "start": "a/1"}])
        ck.error("DeleteBatch singleItem with prefix -> 400", r, 400)
        r = c.delete_batch([{"partitionKey": pk, "prefix": "a/", "start": "b/1"}])
        ck.error("DeleteBatch start outside prefix -> 400", r, 400)

    # ------------------------------------------------------------ ReadIndex
    def read_index(self):
        c, ck = self.c, self.ck
        pre = self.pk("idx-")
        pa, pb, pc = pre + "a", pre + "b", pre + "c"
        c.insert_batch([
            {"pk": pa, "sk": "x", "ct": None, "v": b64(b"12345")},
            {"pk": pa, "sk": "y", "ct": None, "v": b64(b"ab")},
            {"pk": pa, "sk": "z", "ct": None, "v": b64(b"1")},
            {"pk": pb, "sk": "x", "ct": None, "v": b64(b"hello")},
            {"pk": pc, "sk": "x", "ct": None, "v": b64(b"gone")},
        ])
        c.put(pa, "z", b"22")  # concurrent second value: a conflict
        tok = c.get(pc, "x").token
        c.delete(pc, "x", token=tok)
        want = [
            {"pk": pa, "entries": 3, "conflicts": 1, "values": 4, "bytes": 10},
            {"pk": pb, "entries": 1, "conflicts": 0, "values": 1, "bytes": 5},
        ]
        deadline = time.monotonic() + 15
        got = None
        r = None
        while time.monotonic() < deadline:
            r = c.read_index(prefix=pre)
            if r.status == 200:
                got = r.json()
                if got.get("partitionKeys") == want:
                    break
            time.sleep(0.5)
        ck.check("ReadIndex converges to the exact counters (entries/conflicts/values/bytes; deleted pk hidden)",
                 got is not None and got.get("partitionKeys") == want, f"last answer {r!r}")
        if got is not None:
            ck.check("ReadIndex echoes prefix/start/end/limit/reverse, more false",
                     got.get("prefix") == pre and got.get("start") is None and got.get("end") is None
                     and got.get("limit") is None and got.get("reverse") is False
                     and got.get("more") is False and got.get("nextStart") is None, got)
        r = c.read_index(prefix=pre, limit=1)
        j = r.json() if r.status == 200 else {}
        ck.check("ReadIndex limit=1 -> more true, nextStart = next pk",
                 [p["pk"] for p in j.get("partitionKeys", [])] == [pa] and j.get("more") is True
                 and j.get("nextStart") == pb and j.get("limit") == 1, r)
        r = c.read_index(prefix=pre, limit=2)
        j = r.json() if r.status == 200 else {}
        ck.check("ReadIndex limit equal to the keys left -> more false",
                 len(j.get("partitionKeys", [])) == 2 and j.get("more") is False, r)
        r = c.read_index(prefix=pre, reverse=True)
        j = r.json() if r.status == 200 else {}
        ck.eq("ReadIndex reverse with prefix", [p["pk"] for p in j.get("partitionKeys", [])], [pb, pa])
        r = c.read_index(prefix=pre, start=pb)
        j = r.json() if r.status == 200 else {}
        ck.eq("ReadIndex start (inclusive)", [p["pk"] for p in j.get("partitionKeys", [])], [pb])
        r = c.read_index(prefix=pre, start=pb, reverse=True)
        j = r.json() if r.status == 200 else {}
        ck.eq("ReadIndex reverse from start (inclusive) downwards", [p["pk"] for p in j.get("partitionKeys", [])],
              [pb, pa])
        r = c.read_index(prefix=pre, reverse=True, limit=1)
        j = r.json() if r.status == 200 else {}
        ck.check("ReadIndex reverse with limit -> nextStart is the next pk downwards",
                 [p["pk"] for p in j.get("partitionKeys", [])] == [pb] and j.get("more") is True
                 and j.get("nextStart") == pa, r)
        r = c.read_index(start=pa, end=pb)
        j = r.json() if r.status == 200 else {}
        ck.eq("ReadIndex end (exclusive)", [p["pk"] for p in j.get("partitionKeys", [])], [pa])
        r = c.read_index(prefix=pre, start="zzz")
        ck.error("ReadIndex start outside prefix -> 400", r, 400)
        r = c.read_index(limit="abc")
        ck.error("ReadIndex limit=abc -> 400", r, 400)

    # ----------------------------------------------------------- PollRange
    def poll_range(self):
        c, ck = self.c, self.ck
        pk = self.pk("prange")
        c.insert_batch([{"pk": pk, "sk": k, "ct": None, "v": b64(k.encode())} for k in ["a", "p/1", "p/2", "q/1"]])

        r = c.poll_range(pk, {})
        ck.status("PollRange without marker -> 200 at once", r, 200, fatal=True)
        j = r.json()
        ck.check("PollRange without marker: whole range + seenMarker",
                 sorted(it["sk"] for it in j.get("items", [])) == ["a", "p/1", "p/2", "q/1"]
                 and isinstance(j.get("seenMarker"), str) and j["seenMarker"] != "", j)
        ck.check("PollRange items have sk/ct/v",
                 all(set(it) >= {"sk", "ct", "v"} for it in j.get("items", [])), j)
        marker_all = j.get("seenMarker", "")

        r = c.poll_range(pk, {"prefix": "p/"})
        j = r.json() if r.status == 200 else {}
        ck.eq("PollRange with a prefix returns the prefix's content even when keys sort before it",
              sorted(it["sk"] for it in j.get("items", [])), ["p/1", "p/2"])
        marker_p = j.get("seenMarker", "")

        r = c.poll_range(pk, {"prefix": "zz"})
        j = r.json() if r.status == 200 else {}
        ck.check("PollRange without marker on an empty range -> 200, no items, a marker",
                 r.status == 200 and j.get("items") == [] and isinstance(j.get("seenMarker"), str), r)

        errors: list = []
        th = later(0.5, lambda: c.put(pk, "p/3", b"new"), errors)
        r = c.poll_range(pk, {"prefix": "p/", "seenMarker": marker_p, "timeout": 10})
        th.join()
        j = r.json() if r.status == 200 else {}
        ck.check("PollRange with marker wakes on a concurrent insert and returns only the new item",
                 r.status == 200 and [it["sk"] for it in j.get("items", [])] == ["p/3"]
                 and j["items"][0]["v"] == [b64(b"new")] and 0.3 < r.elapsed < 8 and not errors,
                 f"{r!r} after {r.elapsed:.2f}s, thread errors {errors}")
        marker_p2 = j.get("seenMarker", marker_p)

        r = c.poll_range(pk, {"prefix": "p/", "seenMarker": marker_p2, "timeout": 1})
        ck.check("PollRange with an up-to-date marker, timeout 1 -> 304",
                 r.status == 304 and 0.8 < r.elapsed < 6, f"{r!r} after {r.elapsed:.2f}s")

        c.put(pk, "q/2", b"outside")
        r = c.poll_range(pk, {"prefix": "p/", "seenMarker": marker_p2, "timeout": 1})
        ck.status("a write outside the polled prefix does not wake it (304)", r, 304)

        r = c.poll_range(pk, {"seenMarker": marker_all, "timeout": 10}, method="SEARCH")
        j = r.json() if r.status == 200 else {}
        ck.check("SEARCH ?poll_range with an older marker -> only items changed since",
                 r.status == 200 and sorted(it["sk"] for it in j.get("items", [])) == ["p/3", "q/2"], r)

        tok = c.get(pk, "p/1").token
        c.put(pk, "p/1", b"updated", token=tok)
        r = c.poll_range(pk, {"prefix": "p/", "seenMarker": marker_p2, "timeout": 10})
        j = r.json() if r.status == 200 else {}
        ck.check("an update of a seen item is reported",
                 r.status == 200 and [(it["sk"], it["v"]) for it in j.get("items", [])] == [("p/1", [b64(b"updated")])],
                 r)
        marker_p3 = j.get("seenMarker", marker_p2)
        tok = c.get(pk, "p/2").token
        c.delete(pk, "p/2", token=tok)
        r = c.poll_range(pk, {"prefix": "p/", "seenMarker": marker_p3, "timeout": 10})
        j = r.json() if r.status == 200 else {}
        ck.check("a deletion is reported as a change (tombstone [null])",
                 r.status == 200 and [(it["sk"], it["v"]) for it in j.get("items", [])] == [("p/2", [None])], r)

        marker_p4 = j.get("seenMarker", marker_p3)
        r = c.poll_range(pk, {"prefix": "p/", "start": "p/2", "end": "p/3", "seenMarker": marker_p4, "timeout": 1})
        ck.status("marker reused on a sub-range without changes -> 304", r, 304)

        r = c.poll_range(pk, {"seenMarker": "this is not a marker", "timeout": 1})
        ck.error("PollRange with a malformed marker -> 400", r, 400)
        r = c.poll_range(pk, {"prefix": "p/", "start": "q/1"})
        ck.error("PollRange with start outside prefix -> 400", r, 400)
        r = c.request("POST", pk, [], b"{}", {"content-type": "application/json"})
        ck.error("POST on a partition key without ?poll_range -> 400", r, 400)

    # --------------------------------------------------------------- limits
    def limits(self):
        c, ck = self.c, self.ck
        pk = self.pk("limit")
        # Declare a body larger than the limit but send none of it: the server
        # must answer 413 from the headers alone.
        wire = c.path(pk)
        q = [("sort_key", "big")]
        h = sign_headers("PUT", wire, q, {"host": c.host_header}, "UNSIGNED-PAYLOAD", c.key_id, c.secret, c.region)
        conn = c._conn(30)
        status = None
        try:
            conn.putrequest("PUT", wire + "?" + wire_query(q), skip_host=True, skip_accept_encoding=True)
            for k, v in h.items():
                conn.putheader(k, v)
            conn.putheader("content-length", str(self.max_body + 1))
            conn.endheaders()
            resp = conn.getresponse()
            status = resp.status
            resp.read()
        except Exception as e:  # noqa: BLE001
            status = f"exception {e!r}"
        finally:
            conn.close()
        ck.check(f"body declared larger than max_body_size ({self.max_body} bytes) -> 413 before upload",
                 status == 413, f"got {status}")
        st = _chunked_put_impl(c, pk, self.max_body + (2 << 20))
        ck.check("chunked body (no Content-Length) growing past max_body_size -> 413", st == 413, f"got {st}")
        r = c.put(pk, "ok", b"x" * 100_000)
        ck.status("100 kB body under the limit -> 204", r, 204)


def _chunked_put_impl(c: Client, pk: str, size: int):
    """PUTs `size` bytes with chunked transfer encoding (no Content-Length);
    returns the status, or a string describing a network failure."""
    wire = c.path(pk)
    q = [("sort_key", "chunked")]
    h = sign_headers("PUT", wire, q, {"host": c.host_header}, "UNSIGNED-PAYLOAD", c.key_id, c.secret, c.region)
    conn = c._conn(60)
    try:
        conn.putrequest("PUT", wire + "?" + wire_query(q), skip_host=True, skip_accept_encoding=True)
        for k, v in h.items():
            conn.putheader(k, v)
        conn.putheader("transfer-encoding", "chunked")
        conn.endheaders()
        chunk = b"k" * (1 << 20)
        left = size
        try:
            while left > 0:
                n = min(left, len(chunk))
                conn.send(b"%x\r\n" % n + chunk[:n] + b"\r\n")
                left -= n
            conn.send(b"0\r\n\r\n")
        except OSError:
            pass  # the server may stop reading once it has refused the body
        r = conn.getresponse()
        r.read()
        return r.status
    except Exception as e:  # noqa: BLE001
        return f"exception {e!r}"
    finally:
        conn.close()


def main() -> int:
    env = os.environ.get
    ap = argparse.ArgumentParser(description="End-to-end test of a K2V endpoint.")
    ap.add_argument("--endpoint", default=env("K2V_ENDPOINT", "http://127.0.0.1:3904"))
    ap.add_argument("--region", default=env("K2V_REGION", "garage"))
    ap.add_argument("--key-id", default=env("K2V_KEY_ID"))
    ap.add_argument("--secret", default=env("K2V_SECRET"))
    ap.add_argument("--bucket", default=env("K2V_BUCKET", "default"))
    ap.add_argument("--max-body", type=int, default=int(env("K2V_MAX_BODY", str(64 << 20))),
                    help="the node's [k2v_api] max_body_size in bytes (default 64 MiB)")
    ap.add_argument("--fail-fast", action="store_true", help="stop at the first failed check")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    if not a.key_id or not a.secret:
        ap.error("--key-id and --secret (or K2V_KEY_ID and K2V_SECRET) are required")

    run_id = "k2vt" + os.urandom(5).hex()
    print(f"# endpoint {a.endpoint}, bucket {a.bucket}, run prefix {run_id}", flush=True)
    c = Client(a.endpoint, a.region, a.key_id, a.secret, a.bucket)
    ck = Checker(a.fail_fast, a.verbose)
    s = Suite(c, ck, run_id, a.max_body)
    t0 = time.monotonic()
    sections = [s.cors, s.auth, s.items, s.dvvs, s.poll_item, s.batches, s.delete_batch, s.read_index,
                s.poll_range, s.limits]
    for sec in sections:
        print(f"# {sec.__name__}", flush=True)
        try:
            sec()
        except Abort as e:
            print(f"# section {sec.__name__} stopped after failed check: {e}", flush=True)
        except (ConnectionError, OSError, http.client.HTTPException) as e:
            ck.check(f"section {sec.__name__} ran without a network error", False, repr(e))
        except SystemExit:
            raise
        except Exception as e:  # noqa: BLE001
            ck.check(f"section {sec.__name__} ran without an unexpected error", False,
                     "".join(traceback.format_exception_only(e)).strip())
            if a.verbose:
                traceback.print_exc()
    print(f"# {time.monotonic() - t0:.1f} s", flush=True)
    if ck.failures:
        print("# failures:", flush=True)
        for f in ck.failures:
            print("#   " + f, flush=True)
    return ck.summary()


if __name__ == "__main__":
    sys.exit(main())
