"""The off-host witness of the audit chains (checklist L4, M4): every signed
checkpoint is also a JSON log line (`audit.checkpoint`), and `breeze-server
audit verify --witness LOG` compares the database with those lines, so a
superuser who rewrites rows, re-seals the chain AND deletes the stored
checkpoints — which the database alone can no longer show — is caught."""
import json

from audit_canonical import checksum
from test_audit_tamper import N_ROWS, make_chain, tamper


def checkpoint_lines(stderr):
    """The audit.checkpoint objects among STDERR's lines."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            o = json.loads(line)
            if o.get("msg") == "audit.checkpoint":
                out.append(o)
    return out


def witness_file(tmp_path, stderr):
    """A log file as log shipping would keep it: the server's lines among
    others, some with a runtime's prefix."""
    f = tmp_path / "breeze.log"
    lines = ["plain text from somewhere else", '{"msg":"http.request","status":200}']
    lines += ["2026-01-01T00:00:00.000Z stderr F " + l for l in stderr.splitlines()]
    f.write_text("\n".join(lines) + "\n")
    return f


def test_checkpoint_is_logged_with_what_verifies_it(audit):
    org, rows = make_chain(audit)
    p = audit.cli("checkpoint")
    assert p.returncode == 0, p.stderr
    mine = [o for o in checkpoint_lines(p.stderr) if o["chainId"] == org]
    assert len(mine) == 1, p.stderr
    cp = mine[0]
    assert cp["level"] == "info" and cp["seq"] == N_ROWS and cp["checksum"] == rows[-1]["checksum"]
    stored = audit.su("SELECT public_key, signature, floor(extract(epoch FROM created_at))::bigint"
                      "  FROM audit_checkpoints WHERE chain_id = %s AND seq = %s", org, N_ROWS)
    assert stored == [(cp["publicKey"], cp["signature"], cp["createdAt"])]
    # Nothing moved: a second pass signs (and logs) nothing for this chain.
    again = audit.cli("checkpoint")
    assert not [o for o in checkpoint_lines(again.stderr) if o["chainId"] == org]


def test_witness_catches_rows_and_checkpoints_rewritten_together(audit, tmp_path):
    org, rows = make_chain(audit)
    p = audit.cli("checkpoint")
    assert p.returncode == 0, p.stderr
    log = witness_file(tmp_path, p.stderr)
    rc, chain, _ = audit.verify(org, "--witness", log)
    assert rc == 0 and chain["ok"], chain

    # The superuser rewrites row 3, re-seals every later row and the head,
    # and removes the stored checkpoints that would have told.
    new = [dict(r) for r in rows]
    new[2]["details"] = '{"i": 2, "note": "nothing happened here"}'
    prev = new[1]["checksum"]
    stmts = []
    for r in new[2:]:
        r["prev_checksum"] = prev
        r["checksum"] = prev = checksum(r)
        stmts.append(("UPDATE audit_log SET details = %s, prev_checksum = %s, checksum = %s"
                      " WHERE id = %s", (r["details"], r["prev_checksum"], r["checksum"], r["id"])))
    stmts.append(("UPDATE audit_chain_heads SET checksum = %s WHERE chain_id = %s", (prev, org)))
    stmts.append(("DELETE FROM audit_checkpoints WHERE chain_id = %s", (org,)))
    tamper(audit, *stmts)

    # The database alone vouches for the forgery...
    rc, chain, _ = audit.verify(org)
    assert rc == 0 and chain["ok"], chain
    # ...the witness does not.
    rc, chain, doc = audit.verify(org, "--witness", log)
    assert rc == 1 and not chain["ok"] and not doc["ok"], chain
    kinds = {b["kind"] for b in chain["breaks"]}
    assert kinds == {"checkpoint_mismatch"}, chain
    b = chain["breaks"][0]
    assert b["seq"] == N_ROWS and "witness line" in b["detail"], b
    # --all checks the witness's chains too.
    p, doc = audit.cli_json("verify", "--all", "--witness", log)
    assert p.returncode == 1
    assert [c["ok"] for c in doc["chains"] if c.get("orgId") == org] == [False]


def test_witness_catches_newest_rows_deleted_with_their_checkpoints(audit, tmp_path):
    org, rows = make_chain(audit)
    p = audit.cli("checkpoint")
    log = witness_file(tmp_path, p.stderr)
    tamper(audit,
           ("DELETE FROM audit_log WHERE chain_id = %s AND seq > 4", (org,)),
           ("UPDATE audit_chain_heads SET seq = 4, checksum = %s WHERE chain_id = %s",
            (rows[3]["checksum"], org)),
           ("DELETE FROM audit_checkpoints WHERE chain_id = %s", (org,)))
    assert audit.verify(org)[0] == 0
    rc, chain, _ = audit.verify(org, "--witness", log)
    assert rc == 1 and {b["kind"] for b in chain["breaks"]} == {"checkpoint_mismatch"}, chain
    assert "newest rows deleted" in chain["breaks"][0]["detail"]


def test_forged_witness_lines_are_not_believed(audit, tmp_path):
    """A line the trusted key did not sign is a warning, never a break: a log
    can be written by anyone who can write to it."""
    org, rows = make_chain(audit)
    forged = {"msg": "audit.checkpoint", "chainId": org, "seq": 2, "checksum": "0" * 64,
              "createdAt": 1767225600, "publicKey": "ab" * 32, "signature": "cd" * 64}
    log = tmp_path / "forged.log"
    log.write_text(json.dumps(forged) + "\n" + '{"msg":"audit.checkpoint","chainId":"nope"}\n')
    rc, chain, _ = audit.verify(org, "--witness", log)
    assert rc == 0 and chain["ok"], chain
    assert [w["kind"] for w in chain["warnings"]] == ["untrusted_checkpoint"], chain
    p = audit.cli("verify", "--org", org, "--witness", log)
    assert "1 malformed audit.checkpoint line" in p.stderr, p.stderr


def test_witness_usage_errors(audit, tmp_path):
    org, _ = make_chain(audit, 2)
    p = audit.cli("verify", "--org", org, "--witness", tmp_path / "missing.log")
    assert p.returncode == 1 and "cannot open" in p.stderr
    p = audit.cli("verify", "--file", "-", "--witness", tmp_path / "x")
    assert p.returncode == 2 and "exclude" in p.stderr
