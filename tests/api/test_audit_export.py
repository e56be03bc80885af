"""Offline verification of an export (checklist L4): `audit export --org ID`
writes a header line and one JSON line per row; `audit verify --file F
--public-key HEX` checks it with no database and no env file. An intact
export passes; any edit, removal or insertion fails and is named; a key
other than the signing key fails."""
import json
import re
import secrets

import pytest

from audit_canonical import checksum

N_ROWS = 5
MARKER = "marker-7f3a9c"


@pytest.fixture(scope="module")
def exported(audit, tmp_path_factory):
    """An organization with N_ROWS rows, checkpointed, exported; returns a
    namespace-like dict with org, rows, the file text and the public key."""
    org = audit.new_org()
    audit.insert(org, N_ROWS, actor_id=lambda i: f"actor-{i}", ip_address=lambda i: f"192.0.2.{i + 1}",
                 details=lambda i: json.dumps({"i": i, "note": f"{MARKER}-{i}", "utf8": "ß"}))
    p = audit.cli("checkpoint")
    assert p.returncode == 0, p.stderr
    p = audit.cli("export", "--org", org)
    assert p.returncode == 0, p.stderr
    key = audit.cli("public-key")
    assert key.returncode == 0, key.stderr
    pub = key.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", pub), key.stdout
    d = tmp_path_factory.mktemp("export")
    return {"org": org, "rows": audit.rows(org), "text": p.stdout, "pub": pub, "dir": d}


def lines_of(exported):
    return exported["text"].splitlines(keepends=True)


def is_row(line):
    o = json.loads(line)
    return isinstance(o, dict) and "seq" in o and "checksum" in o and "format" not in o


def split(exported):
    """(header line, row lines, trailing lines such as a signed seal)."""
    lines = lines_of(exported)
    rows = [ln for ln in lines[1:] if is_row(ln)]
    assert lines[1:1 + len(rows)] == rows, "row lines must follow the header, contiguous"
    return lines[0], rows, lines[1 + len(rows):]


def verify_file(audit, path, pub):
    """Offline: no --env-file (so no key comes from AUDIT_SIGNING_KEY), no DB."""
    args = ["verify", "--file", str(path)]
    if pub is not None:
        args += ["--public-key", pub]
    p = audit.cli(*args, "--json", env_file=None)
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        doc = None
    return p, doc


def write(exported, name, lines):
    path = exported["dir"] / name
    path.write_text("".join(lines))
    return path


def breaks_of(doc):
    assert doc is not None and len(doc["chains"]) == 1, doc
    return [(b["kind"], b["seq"], b.get("id")) for b in doc["chains"][0]["breaks"]]


def test_export_format(exported):
    lines = lines_of(exported)
    head, rows, tail = split(exported)
    assert len(rows) == N_ROWS and all(ln.endswith("\n") for ln in lines)
    assert len(tail) <= 1 and all("exportSeal" in json.loads(t) for t in tail), tail
    header = json.loads(head)
    assert header["orgId"] == exported["org"]
    assert any(c["seq"] == N_ROWS for c in header["checkpoints"]), header
    for ln, row in zip(rows, exported["rows"]):
        e = json.loads(ln)
        mapped = {"id": e["id"], "org_id": e["orgId"], "seq": e["seq"], "ts": e["ts"],
                  "actor_type": e["actorType"], "actor_id": e["actorId"], "action": e["action"],
                  "resource": e["resource"], "resource_id": e["resourceId"], "details": e["details"],
                  "ip_address": e["ipAddress"], "result": e["result"], "prev_checksum": e["prevChecksum"]}
        # Exactly the stored values: the checksum recomputes from the line alone.
        assert checksum(mapped) == e["checksum"] == row["checksum"]
        assert str(e["id"]) == str(row["id"]) and str(e["seq"]) == str(row["seq"])


def test_intact_export_verifies(audit, exported):
    path = write(exported, "intact.jsonl", lines_of(exported))
    p, doc = verify_file(audit, path, exported["pub"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert doc["ok"] is True and breaks_of(doc) == [] and doc["chains"][0]["rowsChecked"] == N_ROWS


def _edit_char(line, old, new):
    assert line.count(old) == 1, (old, line)
    return line.replace(old, new)


@pytest.mark.parametrize("row", [1, 3, N_ROWS])
def test_one_character_of_details_edited(audit, exported, row):
    lines = lines_of(exported)
    lines[row] = _edit_char(lines[row], f"{MARKER}-{row - 1}", f"{MARKER[:-1]}X-{row - 1}")
    path = write(exported, f"edited-{row}.jsonl", lines)
    p, doc = verify_file(audit, path, exported["pub"])
    assert p.returncode == 1, p.stdout + p.stderr
    assert doc["ok"] is False
    r = exported["rows"][row - 1]
    assert [(k, s) for k, s, _ in breaks_of(doc)] == [("altered_row", row)], doc
    assert str(breaks_of(doc)[0][2]) == str(r["id"])


EDITS = {
    # field of row 3 -> (old, new) within that line
    "actorId": lambda ln: _edit_char(ln, '"actor-2"', '"actor-9"'),
    "ipAddress": lambda ln: _edit_char(ln, '"192.0.2.3"', '"192.0.2.4"'),
    "result": lambda ln: _edit_char(ln, '"result":"success"', '"result":"failure"'),
    "ts": lambda ln: re.sub(r'("ts":"[^"]*)(\d)Z"', lambda m: m.group(1) + str((int(m.group(2)) + 1) % 10) + 'Z"', ln),
}


@pytest.mark.parametrize("field", list(EDITS))
def test_other_fields_edited(audit, exported, field):
    lines = lines_of(exported)
    edited = EDITS[field](lines[3])
    assert edited != lines[3]
    lines[3] = edited
    p, doc = verify_file(audit, write(exported, f"edit-{field}.jsonl", lines), exported["pub"])
    assert p.returncode == 1 and [(k, s) for k, s, _ in breaks_of(doc)] == [("altered_row", 3)], doc


def test_removed_row_fails(audit, exported):
    lines = lines_of(exported)
    del lines[3]
    p, doc = verify_file(audit, write(exported, "removed.jsonl", lines), exported["pub"])
    assert p.returncode == 1 and breaks_of(doc)[0][0] == "missing_row", doc


def test_duplicated_row_fails(audit, exported):
    lines = lines_of(exported)
    lines.insert(3, lines[3])
    p, doc = verify_file(audit, write(exported, "dup.jsonl", lines), exported["pub"])
    assert p.returncode == 1 and breaks_of(doc)[0][:2] == ("inserted_row", 3), doc


@pytest.mark.parametrize("keep_tail", [True, False])
def test_truncated_export_fails(audit, exported, keep_tail):
    """The newest rows cut off (with or without what follows them): the
    signatures tell, not the hash chain, which is intact."""
    head, rows, tail = split(exported)
    lines = [head] + rows[:-2] + (tail if keep_tail else [])
    p, doc = verify_file(audit, write(exported, f"truncated-{keep_tail}.jsonl", lines), exported["pub"])
    kinds = {k for k, _, _ in breaks_of(doc)}
    assert p.returncode == 1 and kinds and kinds <= {"checkpoint_mismatch", "missing_row"}, doc


def _resealed(exported, strip_signatures=False):
    """Row 2's details rewritten and every later row re-sealed: the rows are
    self-consistent, only signatures can tell. STRIP_SIGNATURES also drops the
    header's checkpoints and any trailing (seal) lines."""
    head, rows, tail = split(exported)
    header = json.loads(head)
    if strip_signatures:
        header["checkpoints"] = []
    out = [json.dumps(header, separators=(",", ":")) + "\n"]
    prev = None
    for i, ln in enumerate(rows, 1):
        e = json.loads(ln)
        if i == 2:
            e["details"] = '{"i": 1, "note": "nothing to see"}'
        if i >= 2:
            e["prevChecksum"] = prev
            e["checksum"] = checksum({"id": e["id"], "org_id": e["orgId"], "seq": e["seq"], "ts": e["ts"],
                                      "actor_type": e["actorType"], "actor_id": e["actorId"],
                                      "action": e["action"], "resource": e["resource"],
                                      "resource_id": e["resourceId"], "details": e["details"],
                                      "ip_address": e["ipAddress"], "result": e["result"],
                                      "prev_checksum": e["prevChecksum"]})
        prev = e["checksum"]
        out.append(json.dumps(e, separators=(",", ":")) + "\n")
    return out + ([] if strip_signatures else tail)


SIGNATURE_KINDS = {"checkpoint_mismatch", "missing_row"}


def test_resealed_export_fails(audit, exported):
    p, doc = verify_file(audit, write(exported, "resealed.jsonl", _resealed(exported)), exported["pub"])
    kinds = {k for k, _, _ in breaks_of(doc)}
    assert p.returncode == 1 and "checkpoint_mismatch" in kinds and kinds <= SIGNATURE_KINDS, doc


def test_resealed_export_with_forged_checkpoint_fails(audit, exported):
    lines = _resealed(exported)
    header = json.loads(lines[0])
    new_head = json.loads(lines[N_ROWS])["checksum"]
    for c in header["checkpoints"]:
        if c["seq"] == N_ROWS:
            c["checksum"] = new_head
    lines[0] = json.dumps(header, separators=(",", ":")) + "\n"
    p, doc = verify_file(audit, write(exported, "forged-cp.jsonl", lines), exported["pub"])
    assert p.returncode == 1 and "checkpoint_mismatch" in {k for k, _, _ in breaks_of(doc)}, doc


def test_export_without_signatures_fails_when_a_key_is_given(audit, exported):
    """A re-sealed export stripped of its signed checkpoints has nothing the
    public key can vouch for: verifying it against that key must not pass."""
    lines = _resealed(exported, strip_signatures=True)
    p, doc = verify_file(audit, write(exported, "unsigned.jsonl", lines), exported["pub"])
    assert p.returncode == 1, f"an export with no signature passed --public-key verification:\n{p.stdout}{p.stderr}"


def test_wrong_public_key_fails(audit, exported, tmp_path):
    other_env = tmp_path / "other.env"
    text = re.sub(r"(?m)^AUDIT_SIGNING_KEY=.*$", f"AUDIT_SIGNING_KEY={secrets.token_hex(32)}",
                  audit.env_file.read_text())
    other_env.write_text(text)
    other_env.chmod(0o600)
    p = audit.cli("public-key", env_file=other_env)
    assert p.returncode == 0, p.stderr
    wrong = p.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", wrong) and wrong != exported["pub"]
    path = write(exported, "intact2.jsonl", lines_of(exported))
    p, doc = verify_file(audit, path, wrong)
    assert p.returncode == 1, p.stdout + p.stderr
    assert doc["ok"] is False and breaks_of(doc), doc
    # The right key still passes the very same file.
    assert verify_file(audit, path, exported["pub"])[0].returncode == 0


@pytest.mark.parametrize("garbage", ["", "not json\n", '{"format":"something-else"}\n'])
def test_malformed_export_fails(audit, exported, garbage):
    path = write(exported, "garbage.jsonl", [garbage] + lines_of(exported)[1:])
    p, _ = verify_file(audit, path, exported["pub"])
    assert p.returncode == 1, p.stdout + p.stderr


# ---- the export seal (docs/audit-chain.md §8)


def test_export_ends_with_a_seal_naming_the_last_row(exported):
    _, rows, tail = split(exported)
    assert len(tail) == 1, tail
    seal = json.loads(tail[0])["exportSeal"]
    last = json.loads(rows[-1])
    assert seal["chainId"] == exported["org"] and seal["rows"] == N_ROWS
    assert seal["lastSeq"] == int(last["seq"]) and seal["lastChecksum"] == last["checksum"]
    assert seal["publicKey"] == exported["pub"] and re.fullmatch(r"[0-9a-f]{128}", seal["signature"])


def test_cut_short_to_an_older_checkpoint_fails(audit, tmp_path):
    """Rows after an older checkpoint removed together with the newer
    checkpoint that signed them (the header is not signed): the hash chain
    and the remaining checkpoint are intact, only the seal can tell."""
    org = audit.new_org()
    audit.insert(org, 3)
    assert audit.cli("checkpoint").returncode == 0
    audit.insert(org, 2)
    assert audit.cli("checkpoint").returncode == 0
    p = audit.cli("export", "--org", org)
    assert p.returncode == 0, p.stderr
    pub = audit.cli("public-key").stdout.strip()
    lines = p.stdout.splitlines(keepends=True)
    header = json.loads(lines[0])
    assert sorted(c["seq"] for c in header["checkpoints"]) == [3, 5], header
    ex = {"text": p.stdout, "dir": tmp_path}
    head, rows, tail = split(ex)
    intact = write(ex, "two-checkpoints.jsonl", lines)
    assert verify_file(audit, intact, pub)[0].returncode == 0
    header["checkpoints"] = [c for c in header["checkpoints"] if c["seq"] == 3]
    cut = [json.dumps(header, separators=(",", ":")) + "\n"] + rows[:3] + tail
    p, doc = verify_file(audit, write(ex, "cut-older.jsonl", cut), pub)
    assert p.returncode == 1 and [k for k, _, _ in breaks_of(doc)] == ["missing_row"], doc


def test_seal_removed_fails(audit, exported):
    head, rows, _ = split(exported)
    p, doc = verify_file(audit, write(exported, "no-seal.jsonl", [head] + rows), exported["pub"])
    assert p.returncode == 1 and [k for k, _, _ in breaks_of(doc)] == ["missing_row"], doc


def test_edited_seal_fails(audit, exported):
    """A seal rewritten to match a shortened file no longer verifies."""
    head, rows, tail = split(exported)
    seal = json.loads(tail[0])
    last = json.loads(rows[-2])
    seal["exportSeal"].update(rows=N_ROWS - 1, lastSeq=int(last["seq"]), lastChecksum=last["checksum"])
    lines = [head] + rows[:-1] + [json.dumps(seal) + "\n"]
    p, doc = verify_file(audit, write(exported, "edited-seal.jsonl", lines), exported["pub"])
    assert p.returncode == 1 and "checkpoint_mismatch" in {k for k, _, _ in breaks_of(doc)}, doc


def test_line_after_the_seal_fails(audit, exported):
    head, rows, tail = split(exported)
    p, doc = verify_file(audit, write(exported, "after-seal.jsonl", [head] + rows + tail + rows[-1:]),
                         exported["pub"])
    assert p.returncode == 1 and "inserted_row" in {k for k, _, _ in breaks_of(doc)}, doc


def test_verify_file_needs_a_public_key(audit, exported):
    """Without a trusted key anyone could have re-sealed the rows."""
    p, _ = verify_file(audit, write(exported, "nokey.jsonl", lines_of(exported)), None)
    assert p.returncode == 2 and "public-key" in p.stderr, p.stdout + p.stderr
