"""G3 with the real agent binary: every command that reads the config directory
(run, status, enroll) refuses a layout someone else could have changed, with a
message saying what is wrong and the command that fixes it, and exit 3; a
directory of its own that others can only read or search is tightened to 0750
and logged. The rules: src/agent/files.h, docs/agent.md."""
import json
import os
import pwd
import stat

import pytest

from conftest import SLOW
from test_agent_e2e import agent_dir, enroll, mode, run_agent  # noqa: F401

EXIT_CONFIG = 3
NOBODY = 65534
TOKEN = "brz_" + "7" * 64
AGENT_ID = "0b9c6f1e-5d1a-4c1e-9a53-7f1f7e8d9c01"


def write(path, text, perm):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, perm)


def logs(out, msg):
    """The JSON log lines called MSG in OUT."""
    found = []
    for line in out.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("msg") == msg:
                found.append(rec)
    return found


@pytest.fixture
def layout(agent_dir):
    """An enrolled-looking config directory written by hand (nothing here
    talks to a server), checked to be accepted as it is."""
    d = agent_dir
    d.mkdir(mode=0o700)
    d.chmod(0o750)
    write(d / "agent.yaml", f'serverUrl: "http://127.0.0.1:9"\nagentId: "{AGENT_ID}"\n', 0o640)
    write(d / "secrets.yaml", f'authToken: "{TOKEN}"\n', 0o600)
    write(d / "state.yaml", "lastHeartbeatEpoch: 1767225600\n", 0o640)
    r = status(d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "agent.files_refused" not in r.stderr
    return d


def status(d):
    return run_agent(["status", "--config-dir", str(d)], d.parent / "status.log")


def commands(d):
    # enroll with --force and a server nobody listens on: refused (3) before
    # the re-enrolment check (5) and before any request (4).
    return {
        "run": ["run", "--config-dir", str(d)],
        "status": ["status", "--config-dir", str(d)],
        "enroll": ["enroll", "--force", "--server", "http://127.0.0.1:9", "--key", "k" * 24,
                   "--secret", "s" * 32, "--config-dir", str(d)],
    }


def symlink_to_moved(p):
    real = p.parent.parent / f"real-{p.name}"
    p.rename(real)
    p.symlink_to(real)


def give_away(p):
    os.chown(p, NOBODY, NOBODY, follow_symlinks=False)


# (id, what to break, file concerned, words of the error, the fix, needs root)
LAYOUTS = [
    ("dir-group-writable", lambda d: d.chmod(0o770), ".",
     "is writable by group or others (mode 0770)", "chmod 0750 {p}", False),
    ("dir-world-writable", lambda d: d.chmod(0o777), ".",
     "is writable by group or others (mode 0777)", "chmod 0750 {p}", False),
    ("dir-world-writable-sticky", lambda d: d.chmod(0o1777), ".",
     "is writable by group or others (mode 1777)", "chmod 0750 {p}", False),
    ("agent-yaml-group-writable", lambda d: (d / "agent.yaml").chmod(0o660), "agent.yaml",
     "is writable by group or others (mode 0660)", "chmod 0640 {p}", False),
    ("agent-yaml-world-writable", lambda d: (d / "agent.yaml").chmod(0o646), "agent.yaml",
     "is writable by group or others (mode 0646)", "chmod 0640 {p}", False),
    ("secrets-group-readable", lambda d: (d / "secrets.yaml").chmod(0o640), "secrets.yaml",
     "is accessible by group or others (mode 0640)", "chmod 0600 {p}", False),
    ("secrets-world-readable", lambda d: (d / "secrets.yaml").chmod(0o604), "secrets.yaml",
     "is accessible by group or others (mode 0604)", "chmod 0600 {p}", False),
    ("secrets-symlink", lambda d: symlink_to_moved(d / "secrets.yaml"), "secrets.yaml",
     "is a symbolic link", 'mv -f -- "$(readlink -f {p})" {p}', False),
    ("agent-yaml-symlink", lambda d: symlink_to_moved(d / "agent.yaml"), "agent.yaml",
     "is a symbolic link", 'mv -f -- "$(readlink -f {p})" {p}', False),
    ("state-symlink", lambda d: symlink_to_moved(d / "state.yaml"), "state.yaml",
     "is a symbolic link", 'mv -f -- "$(readlink -f {p})" {p}', False),
    ("state-world-writable", lambda d: (d / "state.yaml").chmod(0o666), "state.yaml",
     "is writable by group or others (mode 0666)", "chmod 0640 {p}", False),
    ("dir-other-owner", give_away, ".", "is owned by nobody (uid 65534), not by {me}",
     "chown {user}: {p}", True),
    ("agent-yaml-other-owner", lambda d: give_away(d / "agent.yaml"), "agent.yaml",
     "is owned by nobody (uid 65534)", "chown {user}: {p}", True),
    ("secrets-other-owner", lambda d: give_away(d / "secrets.yaml"), "secrets.yaml",
     "is owned by nobody (uid 65534)", "chown {user}: {p}", True),
    ("state-other-owner", lambda d: give_away(d / "state.yaml"), "state.yaml",
     "is owned by nobody (uid 65534)", "chown {user}: {p}", True),
]


@pytest.mark.parametrize("case", LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_every_command_refuses_an_unsafe_layout(layout, case):
    _, breaks, name, error, fix, needs_root = case
    if needs_root and os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root; these tests are not root")
    user = pwd.getpwuid(os.geteuid()).pw_name
    me = f"{user} (uid {os.geteuid()})"
    p = layout if name == "." else layout / name
    before = {f: os.lstat(layout / f) for f in ("agent.yaml", "secrets.yaml", "state.yaml")}
    breaks(layout)
    dir_mode = stat.S_IMODE(os.lstat(layout).st_mode)
    error = error.format(me=me)
    fix = fix.format(p=p, user=user)

    for cmd, args in commands(layout).items():
        r = run_agent(args, layout.parent / f"{cmd}.log", timeout=20 * SLOW)
        out = r.stdout + r.stderr
        assert r.returncode == EXIT_CONFIG, f"{cmd}: {out}"
        refused = logs(r.stderr, "agent.files_refused")
        assert len(refused) == 1, f"{cmd}: {out}"
        assert refused[0]["path"] == str(p), refused
        assert refused[0]["error"].startswith(f"{p} "), refused
        assert error in refused[0]["error"], refused
        assert fix in refused[0]["fix"], refused
        assert TOKEN not in out, cmd
        if cmd == "status":  # also for the person at the terminal
            assert f"files:      NOT OK: {p} " in r.stdout, r.stdout
            assert f"fix: {fix}" in r.stdout, r.stdout
        # Nothing was repaired, replaced or written behind the operator's back.
        assert stat.S_IMODE(os.lstat(layout).st_mode) == dir_mode
        assert "agent.config_dir_tightened" not in r.stderr
    for f, st in before.items():
        if not (layout / f).is_symlink():
            assert os.lstat(layout / f).st_ino == st.st_ino, f
    assert f'"{TOKEN}"' in (layout / "secrets.yaml").read_text()


def test_own_directory_readable_by_others_is_tightened(layout):
    layout.chmod(0o755)
    r = status(layout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert mode(layout) == 0o750
    (t,) = logs(r.stderr, "agent.config_dir_tightened")
    assert (t["configDir"], t["from"], t["to"]) == (str(layout), "0755", "0750"), t
    # Once is enough: the next start has nothing to say.
    r = status(layout)
    assert r.returncode == 0 and "tightened" not in r.stderr, r.stderr
    # Others' bits go, the group's stay as they were.
    layout.chmod(0o701)
    r = run_agent(commands(layout)["status"], layout.parent / "status.log")
    assert r.returncode == 0, r.stderr
    assert mode(layout) == 0o700


def test_another_users_loose_directory_is_refused_not_tightened(layout):
    if os.geteuid() != 0:
        pytest.skip("giving a directory to another user needs root; these tests are not root")
    layout.chmod(0o755)
    give_away(layout)
    r = status(layout)
    assert r.returncode == EXIT_CONFIG, r.stdout + r.stderr
    assert mode(layout) == 0o755
    assert "agent.config_dir_tightened" not in r.stderr
    (p,) = logs(r.stderr, "agent.files_refused")
    assert "owned by nobody" in p["error"] and p["fix"].startswith("chown "), p


def test_enroll_into_an_existing_loose_directory_tightens_it(server, agents, agent_dir):
    agent_dir.mkdir(mode=0o700)
    agent_dir.chmod(0o755)
    r, _ = enroll(server, agents, agent_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert mode(agent_dir) == 0o750
    assert logs(r.stderr, "agent.config_dir_tightened"), r.stderr
    assert mode(agent_dir / "secrets.yaml") == 0o600
    assert mode(agent_dir / "agent.yaml") == 0o640


def test_enroll_refuses_a_writable_directory_before_spending_the_key(server, agents, sql,
                                                                    agent_dir):
    agent_dir.mkdir(mode=0o700)
    agent_dir.chmod(0o770)
    k = agents.create_key()
    r, _ = enroll(server, agents, agent_dir, key=k["key"])
    assert r.returncode == EXIT_CONFIG, r.stdout + r.stderr
    assert f"chmod 0750 {agent_dir}" in r.stderr
    assert sql("SELECT usage_count FROM enrollment_keys WHERE id = %s", k["id"]) == [(0,)]
    assert list(agent_dir.iterdir()) == []
