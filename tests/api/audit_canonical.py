"""An independent Python implementation of the audit row's canonical form
(format "breeze-audit-v1") and checksum, written from the specification, not
from the server's code, so the tests can check the server's checksums.

Fields, in this order: the literal "breeze-audit-v1", id, org_id, seq, ts,
actor_type, actor_id, action, resource, resource_id, details, ip_address,
result, prev_checksum. Each field is "N" when NULL, else
"S<octet length of the UTF-8 value>:<value>,". ts is UTC with exactly six
fractional digits: 2024-05-01T12:34:56.000123Z. checksum = lower-case hex
SHA-256 of the concatenation. The first row of a chain links to GENESIS; the
chain of rows without an organization or partner is NIL_CHAIN.

A row with a partner_id or a site_id uses "breeze-audit-v2" instead: the same
fields with partner_id and site_id after org_id (FIELDS_V2). A row that has
neither (missing keys count as NULL) keeps v1 byte for byte.
"""
import datetime as _dt
import hashlib

FORMAT = "breeze-audit-v1"
FORMAT_V2 = "breeze-audit-v2"
GENESIS = "0" * 64
NIL_CHAIN = "00000000-0000-0000-0000-000000000000"

# The row's columns that the canonical form covers, in order (after FORMAT).
FIELDS = ("id", "org_id", "seq", "ts", "actor_type", "actor_id", "action", "resource",
          "resource_id", "details", "ip_address", "result", "prev_checksum")
FIELDS_V2 = ("id", "org_id", "partner_id", "site_id", "seq", "ts", "actor_type", "actor_id",
             "action", "resource", "resource_id", "details", "ip_address", "result",
             "prev_checksum")


def field(value):
    """One length-prefixed field as bytes."""
    if value is None:
        return b"N"
    b = str(value).encode("utf-8")
    return b"S" + str(len(b)).encode() + b":" + b + b","


def ts_text(ts):
    """A timestamp as hashed. TS: an aware datetime, or a string already in
    the canonical form (returned unchanged after a format check)."""
    if isinstance(ts, str):
        _dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")  # raises if not canonical
        assert len(ts) == 27, ts
        return ts
    assert ts.tzinfo is not None, "naive timestamp"
    return ts.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(row):
    """The canonical bytes of ROW, a mapping with the keys of FIELDS (values as
    stored: text, ints, a datetime for ts), and partner_id / site_id if any."""
    v2 = row.get("partner_id") is not None or row.get("site_id") is not None
    out = [field(FORMAT_V2 if v2 else FORMAT)]
    for name in (FIELDS_V2 if v2 else FIELDS):
        v = row[name]
        if name == "ts" and v is not None:
            v = ts_text(v)
        out.append(field(v))
    return b"".join(out)


def checksum(row):
    return hashlib.sha256(canonical(row)).hexdigest()


def check_chain(rows, first_prev=GENESIS, first_seq=1):
    """Asserts ROWS (ordered by seq) form an intact chain: seq first_seq..N with
    no gap, each checksum recomputes, each prev_checksum is the previous row's
    checksum, no two rows share a predecessor. Returns the number of rows."""
    prev, seq = first_prev, first_seq
    seen_prev = set()
    for r in rows:
        assert r["seq"] == seq, f"gap or duplicate: expected seq {seq}, got {r['seq']}"
        assert r["prev_checksum"] == prev, f"seq {seq}: broken link"
        assert r["prev_checksum"] not in seen_prev, f"seq {seq}: fork"
        seen_prev.add(r["prev_checksum"])
        assert r["checksum"] == checksum(r), f"seq {seq}: checksum does not recompute"
        prev, seq = r["checksum"], seq + 1
    return len(rows)
