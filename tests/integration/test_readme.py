"""The README against the binary, so that the two cannot drift apart.

- Every fenced block of README.md that holds a `$ corral ...` line (optionally after
  VARIABLE=value assignments) is a transcript: each such command is run against the real binary
  and what it prints must be the lines that follow it in the block, exactly.
  When the paragraph just before the block names an exit code ("... and exit code 2:"),
  each command must exit with it.
- The sample /healthz body of the admin endpoints table is compared with what a running corral
  answers: the same keys, nested the same way, with values of the same types; the values
  themselves too, except for the ones that describe the machine (see VARYING).
- The packages the README says packaging/bootstrap.sh installs are the ones it installs.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

import pytest

from conftest import CORRAL_BIN, REPO_ROOT

README = REPO_ROOT / "README.md"
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# /healthz values that depend on how and where corral runs rather than on its state.
VARYING = {"workers_reason"}


@dataclass
class Example:
    line: int  # of the `$` line in README.md, for the test id and messages
    command: str
    expected: list[str]
    exit_code: int | None  # as the paragraph before the block states it

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def fenced_blocks(text: str) -> list[tuple[int, list[str], str]]:
    """(line number of the first line inside, lines, the paragraph just before) of every
    ``` block."""
    blocks, current, start, before = [], None, 0, ""
    paragraph: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if current is None:
                current, start = [], number + 1
                before = " ".join(paragraph) or before
            else:
                blocks.append((start, current, before))
                current, before = None, ""
            paragraph = []
        elif current is not None:
            current.append(line)
        elif line.strip():
            paragraph.append(line)
        elif paragraph:
            before, paragraph = " ".join(paragraph), []
    return blocks


def corral_words(command: str) -> list[str] | None:
    """The words after the VARIABLE=value assignments, when the command runs corral."""
    words = shlex.split(command)
    rest = [w for w in words if not ASSIGNMENT.match(w)] if words else []
    prefix = words[:len(words) - len(rest)]
    if not rest or rest[0] != "corral" or any(not ASSIGNMENT.match(w) for w in prefix):
        return None
    return rest


def transcripts(text: str) -> list[Example]:
    found = []
    for start, lines, before in fenced_blocks(text):
        if not any(line.startswith("$ ") and corral_words(line[2:]) for line in lines):
            continue
        stated = re.search(r"exit code (\d+)", before)
        exit_code = int(stated.group(1)) if stated else None
        for offset, line in enumerate(lines):
            if not line.startswith("$ "):
                continue
            expected = []
            for following in lines[offset + 1:]:
                if following.startswith("$ "):
                    break
                expected.append(following)
            found.append(Example(start + offset, line[2:], expected, exit_code))
    return found


EXAMPLES = transcripts(README.read_text())


def test_the_readme_has_transcripts_to_check():
    """Guards the tests below against a parser that silently finds nothing."""
    assert len(EXAMPLES) >= 2, f"found {EXAMPLES} in {README}"
    assert all(corral_words(example.command) for example in EXAMPLES), EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_readme_transcript_matches_the_binary(corral, tmp_path, example):
    words = shlex.split(example.command)
    assignments = dict(w.split("=", 1) for w in words if ASSIGNMENT.match(w))
    args = corral_words(example.command)[1:]
    # Debian's interpreter, as on the machine the README describes (PATH may start elsewhere).
    c = corral.run(raw_args=[CORRAL_BIN, *args],
                   env={"PATH": "/usr/bin:/bin", **assignments}, timeout=30)
    printed = (c.stdout_text() + c.stderr_text()).splitlines()
    print(f"{example}: `{example.command}` exited {c.returncode}, printed:\n" +
          "\n".join(printed))
    assert printed == example.expected, (
        f"{example}: `{example.command}` printed\n  " + "\n  ".join(printed) +
        "\nbut the README says\n  " + "\n  ".join(example.expected))
    if example.exit_code is not None:
        assert c.returncode == example.exit_code, (
            f"{example}: exit code {c.returncode}; the README says {example.exit_code}")


def readme_healthz_body() -> dict:
    """The body quoted in the /healthz row of the admin endpoints table."""
    rows = [line for line in README.read_text().splitlines() if line.startswith("| `GET /healthz`")]
    assert len(rows) == 1, f"expected one /healthz row in the README's table, found {rows}"
    match = re.search(r"body `(\{.*?\})`", rows[0])
    assert match, f"no body `{{...}}` in the /healthz row: {rows[0]}"
    return json.loads(match.group(1))


def differences(sample, answer, path: str = "") -> list[str]:
    """Where answer's shape (keys, nesting, value types) or values differ from sample's."""
    if isinstance(sample, dict) and isinstance(answer, dict):
        found = [f"{path}.{key}: in the README, not in the answer"
                 for key in sample.keys() - answer.keys()]
        found += [f"{path}.{key}: in the answer, not in the README"
                  for key in answer.keys() - sample.keys()]
        for key in sample.keys() & answer.keys():
            found += differences(sample[key], answer[key], f"{path}.{key}")
        return found
    if type(sample) is not type(answer):
        return [f"{path}: README has {sample!r}, the answer {answer!r}"]
    if path.rsplit(".", 1)[-1] in VARYING:
        return [] if answer else [f"{path}: empty"]
    return [] if sample == answer else [f"{path}: README has {sample!r}, the answer {answer!r}"]


def test_readme_healthz_body_matches_a_running_corral(corral):
    sample = readme_healthz_body()
    workers = sample["workers"]["total"]
    c = corral.start(workers=workers)  # waits until every worker is ready, as in the sample
    response = c.admin("/healthz")
    print(f"README: {json.dumps(sample)}\nanswer: {response.text}")
    assert response.status == 200
    problems = differences(sample, json.loads(response.text))
    assert not problems, "the README's /healthz body has drifted:\n" + "\n".join(problems)


def test_readme_lists_the_packages_bootstrap_installs():
    script = (REPO_ROOT / "packaging" / "bootstrap.sh").read_text()
    listed = re.search(r"^PACKAGES=\((.*?)^\)", script, re.M | re.S)
    assert listed, "no PACKAGES=( ... ) in packaging/bootstrap.sh"
    installed = [word for line in listed.group(1).splitlines()
                 for word in line.split("#", 1)[0].split()]
    said = re.search(r"only when\s+they are missing \(`([^`]*)`\)", README.read_text())
    assert said, "the README no longer lists bootstrap.sh's packages in the expected form"
    assert said.group(1).split() == installed, (
        f"README: {said.group(1)}\nbootstrap.sh: {' '.join(installed)}")
