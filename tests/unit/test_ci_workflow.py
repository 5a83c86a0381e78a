"""The CI workflow (`.github/workflows/ci.yml`) does what the release path (docs/release.md) relies on.

Nothing here runs GitHub Actions: the workflow is parsed and checked against the repository. It
runs `make test` with Python 3.11 and Java 17, every `make` target it calls exists in the Makefile,
the image is built from deploy/Dockerfile with a tag holding the full commit sha and one holding a
short sha, pip-audit reads requirements.lock and fails on what it cannot audit, bandit covers every
package of the distribution, and the image is published only after all of that passed.

`problems()` gathers every failed check as a message; the last tests feed it broken copies of the
workflow to show that each check fails when it should.
"""

from __future__ import annotations

import copy
import itertools
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
MAKEFILE = ROOT / "Makefile"
PYPROJECT = ROOT / "pyproject.toml"
DOCKERFILE = "deploy/Dockerfile"

FULL_SHA = ("${{ github.sha }}", "${GITHUB_SHA}", "$GITHUB_SHA")
"""Ways a run script spells the full commit sha."""
SHORT_SHA = re.compile(r"\$\{GITHUB_SHA::([0-9]+)\}")
"""Bash's prefix of the commit sha: `${GITHUB_SHA::7}`."""
STEP_OUTPUT = re.compile(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}")
ENV_REF = re.compile(r"\$\{?([A-Z_][A-Z0-9_]*)\}?")
PREFIXES = frozenset({"sudo", "time", "exec", "!", "if", "then", "else", "elif", "do", "while", "until"})
"""Words before the program of a command: shell keywords and wrappers."""
ENV_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")

Workflow = dict[str, Any]


# --- reading the files ---------------------------------------------------------------------------


def load_workflow(text: str) -> Workflow:
    """The workflow as a mapping; YAML 1.1 reads the key `on` as True, put back under "on"."""
    data = yaml.safe_load(text)
    assert isinstance(data, dict), "the workflow is not a YAML mapping"
    if True in data:
        data["on"] = data.pop(True)
    return data


def makefile_targets(text: str) -> set[str]:
    """Explicit targets of a Makefile (rules whose names hold no variable; not `:=` assignments)."""
    targets: set[str] = set()
    for line in text.splitlines():
        if not line or line[0] in "\t#" or ":" not in line:
            continue
        head, rest = line.split(":", 1)
        if rest.startswith("=") or any(c in head for c in "=$?+"):
            continue  # VAR := value, VAR ?= value, $(VAR)-named rules
        targets.update(name for name in head.split() if not name.startswith("."))
    return targets


def default_target(text: str) -> str:
    """The first explicit target: what a bare `make` builds."""
    for line in text.splitlines():
        if line and line[0] not in "\t#" and ":" in line:
            head, rest = line.split(":", 1)
            if not rest.startswith("=") and not any(c in head for c in "=$?+.") and head.split():
                return head.split()[0]
    raise AssertionError("the Makefile has no target")


def distribution_packages() -> set[str]:
    """Import packages of the distribution, from pyproject's `[tool.setuptools.packages.find] include`."""
    config = tomllib.loads(PYPROJECT.read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return {pattern.rstrip("*") for pattern in include}


# --- walking the workflow ------------------------------------------------------------------------


def jobs(workflow: Workflow) -> dict[str, dict[str, Any]]:
    found = workflow.get("jobs")
    return found if isinstance(found, dict) else {}


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    found = job.get("steps")
    return [s for s in found if isinstance(s, dict)] if isinstance(found, list) else []


def script(step: dict[str, Any]) -> str:
    """A step's run script, comment lines dropped and backslash continuations joined."""
    run = step.get("run")
    if not isinstance(run, str):
        return ""
    lines = [line for line in run.splitlines() if not line.lstrip().startswith("#")]
    return "\n".join(lines).replace("\\\n", " ")


def env_of(workflow: Workflow, job: dict[str, Any], step: dict[str, Any]) -> dict[str, str]:
    """Workflow, job and step `env`, the most specific winning."""
    merged: dict[str, str] = {}
    for scope in (workflow, job, step):
        env = scope.get("env")
        if isinstance(env, dict):
            merged.update({str(k): str(v) for k, v in env.items()})
    return merged


def expand(text: str, env: dict[str, str]) -> str:
    """`$VAR` and `${VAR}` replaced by the step's env values (others left as they are)."""
    return ENV_REF.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def step_outputs(job: dict[str, Any]) -> dict[tuple[str, str], str]:
    """`(step id, output name) -> value` for outputs written as `echo "name=value" >> "$GITHUB_OUTPUT"`."""
    outputs: dict[tuple[str, str], str] = {}
    for step in steps(job):
        step_id = step.get("id")
        if not isinstance(step_id, str):
            continue
        for m in re.finditer(r'echo\s+"([\w-]+)=([^"]*)"\s*>>\s*"?\$GITHUB_OUTPUT', script(step)):
            outputs[(step_id, m.group(1))] = m.group(2)
    return outputs


def words(line: str) -> list[str]:
    """Shell words of one line; `;`, `&&`, `||`, `|` and parentheses outside quotes are words of their own."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def commands(text: str, program: str) -> list[list[str]]:
    """Arguments of every command of a script that runs `program` (by name or path, maybe under sudo)."""
    found = []
    for line in text.splitlines():
        command: list[str] = []
        for word in [*words(line), ";"]:
            if word and set(word) <= set(";&|()"):
                while command and (command[0] in PREFIXES or ENV_ASSIGNMENT.fullmatch(command[0])):
                    command = command[1:]
                if command and Path(command[0]).name == program:
                    found.append(command[1:])
                command = []
            else:
                command.append(word)
    return found


def make_calls(text: str) -> list[list[str]]:
    """Arguments of each `make` command in a script."""
    return commands(text, "make")


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    """Steps of a job that use `action` (any version)."""
    return [s for s in steps(job) if str(s.get("uses", "")).split("@")[0] == action]


def on_events(workflow: Workflow) -> set[str]:
    on = workflow.get("on")
    if isinstance(on, str):
        return {on}
    return set(on) if isinstance(on, (list, dict)) else set()


# --- the checks ----------------------------------------------------------------------------------


def check_structure(workflow: Workflow) -> list[str]:
    out = [f"not triggered by {e}" for e in ("push", "pull_request") if e not in on_events(workflow)]
    if not jobs(workflow):
        out.append("no jobs")
    for name, job in jobs(workflow).items():
        if "runs-on" not in job:
            out.append(f"job {name} has no runs-on")
        if not steps(job):
            out.append(f"job {name} has no steps")
        for i, step in enumerate(steps(job)):
            if ("uses" in step) == ("run" in step):
                out.append(f"job {name} step {i} needs exactly one of `uses` and `run`")
    return out


def check_make_test(workflow: Workflow) -> list[str]:
    """A job runs `make test` on Ubuntu with Python 3.11 and Java 17."""
    for job in jobs(workflow).values():
        if not any("test" in call for s in steps(job) for call in make_calls(script(s))):
            continue
        out = []
        if "ubuntu" not in str(job.get("runs-on", "")):
            out.append("the make test job does not run on ubuntu")
        pythons = {str(s.get("with", {}).get("python-version")) for s in uses(job, "actions/setup-python")}
        if "3.11" not in pythons:
            out.append(f"the make test job sets up Python {sorted(pythons)}, not 3.11")
        javas = {str(s.get("with", {}).get("java-version")) for s in uses(job, "actions/setup-java")}
        if "17" not in javas:
            out.append(f"the make test job sets up Java {sorted(javas)}, not 17")
        return out
    return ["no job runs `make test`"]


def check_make_targets(workflow: Workflow, makefile: str) -> list[str]:
    """Every `make` call names targets the Makefile defines (a bare `make` means its first target)."""
    defined = makefile_targets(makefile)
    out = []
    for name, job in jobs(workflow).items():
        for step in steps(job):
            for args in make_calls(script(step)):
                if any(a in ("-C", "-f", "--file", "--directory") or a.startswith("--file=") for a in args):
                    out.append(f"job {name}: `make {' '.join(args)}` uses another Makefile")
                    continue
                targets = [a for a in args if not a.startswith("-") and "=" not in a]
                for target in targets or [default_target(makefile)]:
                    if target not in defined:
                        out.append(f"job {name}: `make {target}` is not a target of the Makefile")
    return out


def image_tags(workflow: Workflow) -> list[str]:
    """Tags given to images built from deploy/Dockerfile, with step outputs and env resolved."""
    tags = []
    for job in jobs(workflow).values():
        outputs = step_outputs(job)

        def output(m: re.Match[str], outputs: dict[tuple[str, str], str] = outputs) -> str:
            return outputs.get((m.group(1), m.group(2)), m.group(0))

        for step in steps(job):
            for call in commands(STEP_OUTPUT.sub(output, script(step)), "docker"):
                args = call[1:] if call[:1] == ["buildx"] else call
                if args[:1] != ["build"] or DOCKERFILE not in args:
                    continue
                env = env_of(workflow, job, step)
                tags += [expand(v, env) for k, v in itertools.pairwise(args) if k in ("-t", "--tag")]
    return tags


def check_image_tags(workflow: Workflow) -> list[str]:
    tags = image_tags(workflow)
    if not tags:
        return [f"no job builds {DOCKERFILE} with a tag"]
    out = []
    if not any(tag.endswith(":" + sha) for tag in tags for sha in FULL_SHA):
        out.append(f"no image tag is the full commit sha: {tags}")
    short = [int(n) for tag in tags for n in SHORT_SHA.findall(tag.partition(":")[2])]
    if not any(7 <= n < 40 for n in short):
        out.append(f"no image tag carries a short commit sha: {tags}")
    return out


def check_security(workflow: Workflow) -> list[str]:
    """pip-audit reads requirements.lock strictly; bandit covers every package of the distribution."""
    audits: list[list[str]] = []
    bandit: list[list[str]] = []
    for job in jobs(workflow).values():
        for step in steps(job):
            text = expand(script(step), env_of(workflow, job, step))
            audits += commands(text, "pip-audit")
            bandit += commands(text, "bandit")
    out = []
    locked = [a for a in audits if "requirements.lock" in a and ("-r" in a or "--requirement" in a)]
    if not locked:
        out.append("no pip-audit step reads requirements.lock")
    elif not all("--strict" in a for a in locked):
        out.append("pip-audit runs without --strict: packages it cannot look up would pass unaudited")
    if not bandit:
        out.append("no bandit step")
    packages = distribution_packages()
    for args in bandit:
        missing = packages - set(args)
        if "-r" not in args or missing:
            out.append(f"bandit `{' '.join(args)}` misses packages {sorted(missing)}")
    return out


def check_publish(workflow: Workflow) -> list[str]:
    """A job that pushes images waits for every other job and runs only on pushes to main."""
    out = []
    for name, job in jobs(workflow).items():
        if not any(args[:1] == ["push"] for s in steps(job) for args in commands(script(s), "docker")):
            continue
        needs = job.get("needs", [])
        needs = {needs} if isinstance(needs, str) else set(needs)
        if others := set(jobs(workflow)) - {name} - needs:
            out.append(f"job {name} pushes images without waiting for {sorted(others)}")
        if "refs/heads/main" not in str(job.get("if", "")):
            out.append(f"job {name} pushes images on more than main")
    return out


def problems(workflow: Workflow, makefile: str) -> list[str]:
    """Every failed check, as a message."""
    return [
        *check_structure(workflow),
        *check_make_test(workflow),
        *check_make_targets(workflow, makefile),
        *check_image_tags(workflow),
        *check_security(workflow),
        *check_publish(workflow),
    ]


# --- the real workflow ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow() -> Workflow:
    return load_workflow(WORKFLOW.read_text())


@pytest.fixture(scope="module")
def makefile() -> str:
    return MAKEFILE.read_text()


def test_the_workflow_is_a_mapping_of_jobs_triggered_by_push_and_pull_request(workflow: Workflow) -> None:
    assert check_structure(workflow) == []


def test_make_test_runs_on_ubuntu_with_python_311_and_java_17(workflow: Workflow) -> None:
    assert check_make_test(workflow) == []


def test_every_make_target_the_workflow_calls_exists(workflow: Workflow, makefile: str) -> None:
    called = {
        a for job in jobs(workflow).values() for s in steps(job) for c in make_calls(script(s)) for a in c
    }
    assert {"test", "stop"} <= called
    assert check_make_targets(workflow, makefile) == []


def test_the_image_is_tagged_with_the_full_and_a_short_commit_sha(workflow: Workflow) -> None:
    assert check_image_tags(workflow) == []


def test_pip_audit_reads_the_lock_and_bandit_covers_every_package(workflow: Workflow) -> None:
    assert check_security(workflow) == []


def test_images_are_published_only_after_every_check_on_main(workflow: Workflow) -> None:
    assert "publish" in jobs(workflow)
    assert check_publish(workflow) == []


def test_the_makefile_parser_reads_rules_not_assignments(makefile: str) -> None:
    targets = makefile_targets(makefile)
    assert {"help", "install", "test", "test-unit", "lint", "stop", "demo"} <= targets
    assert not targets & {"PYTHON", "VENV", "EXT", "export", ".PHONY"}
    assert default_target(makefile) == "help"
    assert makefile_targets("a b: c\nX := 1\nY ?= 2\n$(V)/x: y\n\tcmd: not a rule\n") == {"a", "b"}


# --- the checks fail on broken workflows ---------------------------------------------------------


def _edit_runs(workflow: Workflow, old: str, new: str) -> Workflow:
    broken = copy.deepcopy(workflow)
    for job in jobs(broken).values():
        for step in steps(job):
            if isinstance(step.get("run"), str):
                step["run"] = step["run"].replace(old, new)
    return broken


BREAKAGES: list[tuple[str, str, str]] = [
    ("make test PYTHON", "make lint PYTHON", "no job runs `make test`"),
    ("make stop", "make stpo", "`make stpo` is not a target"),
    ("make stop", "make -C elsewhere stop", "uses another Makefile"),
    ('${IMAGE_NAME}:${{ github.sha }}"', '${IMAGE_NAME}:latest"', "full commit sha"),
    ("${GITHUB_SHA::7}", "${GITHUB_REF_NAME}", "short commit sha"),
    ("-r requirements.lock", "-r requirements-nodeps.txt", "reads requirements.lock"),
    ("--disable-pip --strict", "--disable-pip", "without --strict"),
    ("/tmp/sectools/bin/bandit", "/tmp/sectools/bin/flake8", "no bandit step"),
    ("docker build -f deploy/Dockerfile", "docker build -f other/Dockerfile", "no job builds"),
]


@pytest.mark.parametrize(("old", "new", "message"), BREAKAGES, ids=[b[2] for b in BREAKAGES])
def test_each_check_fails_on_a_broken_copy(
    workflow: Workflow, makefile: str, old: str, new: str, message: str
) -> None:
    assert old in WORKFLOW.read_text(), f"the breakage {old!r} no longer matches the workflow"
    found = problems(_edit_runs(workflow, old, new), makefile)
    assert any(message in p for p in found), found


def test_missing_tool_versions_packages_and_gates_are_reported(workflow: Workflow, makefile: str) -> None:
    broken = copy.deepcopy(workflow)
    test_job = jobs(broken)["test"]
    test_job["steps"] = [s for s in steps(test_job) if "setup-java" not in str(s.get("uses", ""))]
    jobs(broken)["security"]["steps"] = [
        {**s, "env": {"BANDIT_TARGETS": "core events"}} if s.get("name") == "bandit" else s
        for s in steps(jobs(broken)["security"])
    ]
    jobs(broken)["publish"]["needs"] = ["image"]
    jobs(broken)["publish"]["if"] = "github.event_name == 'push'"
    broken["on"] = {"push": None}
    found = "\n".join(problems(broken, makefile))
    for message in (
        "not 17",
        "misses packages",
        "'serving'",
        "without waiting for ['security', 'test']",
        "more than main",
        "not triggered by pull_request",
    ):
        assert message in found, found
