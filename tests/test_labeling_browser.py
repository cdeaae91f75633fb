"""The labeling page in a real browser (Debian's headless Chromium through Playwright) against a real server process.

One server serves the whole module (its start costs ~10 s); labelers are told apart by name. Covered: ranking three
prompts with a tie (by mouse and by keyboard) and the rows exported from it, an incomplete ranking refused, undo,
a completion holding HTML and script shown as text, reload mid-way, two labelers at once, kill -9 of the server and a
restart, login off localhost (in a network namespace) with wrong passwords refused, and the rankings from the page
training a RankedRewardTrainer. Round trips (click on Submit -> the page shows the judgement saved) are measured and
written to ``labeling_round_trips.json`` in the test's folder; set ``RLHF_EXT_SCREENSHOTS`` to a folder to keep
the page's screenshot (docs/images/labeling_page.png is made that way).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import pytest

from rlhf_ext.testing.browser import LabelServer, NetNamespace, find_chromium, launch_chromium, only_local_traffic

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="no Chromium: `make test` installs Debian's chromium when run as root with apt; "
    "otherwise `apt-get install chromium` to run the browser tests",
)

SCRIPT = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
ROWS = [
    {"prompt": "The movie was", "completions": [" great fun.", " a bore.", " fine, I guess."]},
    {"prompt": "The team", "completions": [" won the cup.", " lost again.", SCRIPT, " drew."]},
    {"prompt": "Once upon a time", "completions": [" there was a king.", " nothing happened."]},
]
# The ranking every test labeler gives (1 = best), by completion text; " lost again." and the script tie at 3.
WANTED = {
    " great fun.": 1,
    " fine, I guess.": 2,
    " a bore.": 3,
    " won the cup.": 1,
    " drew.": 2,
    " lost again.": 3,
    SCRIPT: 3,
    " there was a king.": 1,
    " nothing happened.": 2,
}
# The same ranking as exported: dense ranks, 0 = best, in the data's own completion order.
EXPECTED_RANKS = {"The movie was": [0, 2, 1], "The team": [0, 2, 2, 1], "Once upon a time": [0, 1]}


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labeling")
    with open(folder / "data.jsonl", "w") as f:
        for row in ROWS:
            f.write(json.dumps(row) + "\n")
    return folder


@pytest.fixture(scope="module")
def server(session_dir):
    server = LabelServer(
        ["--data", str(session_dir / "data.jsonl"), "--session", str(session_dir / "labels.sqlite")],
        log=session_dir / "server.log",
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright):
    browser = launch_chromium(playwright)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def round_trips(session_dir):
    times: list[float] = []
    yield times
    if times:
        summary = {
            "judgements": len(times),
            "median_seconds": statistics.median(times),
            "max_seconds": max(times),
            "all_seconds": times,
        }
        (session_dir / "labeling_round_trips.json").write_text(json.dumps(summary, indent=2))
        print(f"\nround trip per judgement: median {summary['median_seconds']:.3f} s over {len(times)}")


def new_page(browser, server):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    blocked = only_local_traffic(context, (server.host,))
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(server.url)
    return page, blocked


def start(page, name: str) -> None:
    """Enter ``name`` and press Start (both wait until the page-load event has answered and unlocked them)."""
    page.locator("#rlhf-name textarea").fill(name)
    page.click("#rlhf-start")
    wait_progress(page, f"{name}: ")


def wait_progress(page, contains: str) -> str:
    page.wait_for_function(
        "(contains) => { const e = document.querySelector('#rlhf-progress [data-testid=markdown]');"
        " return e && e.innerText.includes(contains); }",
        arg=contains,
    )
    return progress(page)


def status(page) -> str:
    """The page's message (the Markdown alone, not Gradio's progress overlay around it)."""
    return page.inner_text("#rlhf-status [data-testid=markdown]")


def wait_status(page, before: str, contains: str) -> str:
    page.wait_for_function(
        "([before, contains]) => { const e = document.querySelector('#rlhf-status [data-testid=markdown]');"
        " return e && e.innerText !== before && e.innerText.includes(contains); }",
        arg=[before, contains],
    )
    return status(page)


def shown(page) -> tuple[str, list[str]]:
    """The prompt and the completions in the order this labeler sees them, once the page has settled (a newly shown
    component mounts a moment after the confirmation appears)."""
    read = """() => {
        const prompt = document.querySelector('#rlhf-prompt textarea');
        const rows = [...document.querySelectorAll('.rlhf-completion')].filter(e => e.offsetParent !== null);
        const texts = rows.map(r => { const t = r.querySelector('textarea'); return t ? t.value : null; });
        const radios = rows.map(r => r.querySelectorAll('input[type=radio]').length);
        return {prompt: prompt ? prompt.value : null, texts, radios};
    }"""
    last = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = page.evaluate(read)
        k = len(now["texts"])
        if now == last and now["prompt"] and k >= 2 and None not in now["texts"] and now["radios"] == [k] * k:
            return now["prompt"], now["texts"]
        last = now
        page.wait_for_timeout(50)
    raise AssertionError(f"the page did not settle: {last}")


def progress(page) -> str:
    return page.inner_text("#rlhf-progress [data-testid=markdown]")


def rank(page, round_trips: list | None = None, keyboard: bool = False) -> str:
    """Give the shown prompt the WANTED ranking, submit, wait for the confirmation; returns the prompt."""
    prompt, texts = shown(page)
    if keyboard:
        page.locator("body").click(position={"x": 5, "y": 5})  # focus the page, not a text field
        for text in texts:
            page.keyboard.press(str(WANTED[text]))
    else:
        for k, text in enumerate(texts):
            page.click(f"#rlhf-rank-{k} input[value='{WANTED[text]}']")
    before = status(page)
    t0 = time.perf_counter()
    if keyboard:
        page.keyboard.press("Enter")
    else:
        page.click("#rlhf-submit")
    wait_status(page, before, "is on disk")
    if round_trips is not None:
        round_trips.append(time.perf_counter() - t0)
    return prompt


def exported(session_dir, labeler: str) -> dict[str, list[int]]:
    from rlhf_ext.labeling import export_rows

    rows, _ = export_rows(session_dir / "labels.sqlite", labelers=[labeler])
    return {r["prompt"]: r["ranks"] for r in rows}


def test_rank_three_prompts_with_a_tie_undo_and_export(server, browser, session_dir, round_trips):
    page, blocked = new_page(browser, server)
    start(page, "alice")
    assert progress(page).startswith("alice: prompt 1 of 3")

    # An incomplete ranking is refused and nothing is stored.
    page.click("#rlhf-rank-0 input[value='1']")
    before = status(page)
    page.click("#rlhf-submit")
    assert "have no rank" in wait_status(page, before, "Rank every completion first")
    assert exported(session_dir, "alice") == {}

    seen, script_seen = [], False
    for n in range(3):
        prompt, texts = shown(page)
        if SCRIPT in texts:  # the HTML / script completion: text in its box, no <img> on the page, nothing ran
            script_seen = True
            k = texts.index(SCRIPT)
            assert page.input_value(f"#rlhf-text-{k} textarea") == SCRIPT
            assert page.locator("img[src='x']").count() == 0
            assert page.evaluate("window.__pwned") is None
            shots = Path(os.environ.get("RLHF_EXT_SCREENSHOTS") or session_dir)
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "labeling_page.png"), full_page=True)
        seen.append(rank(page, round_trips, keyboard=n == 1))  # the second prompt by keyboard alone
    assert script_seen and page.evaluate("window.__pwned") is None
    assert "all done, 3 of 3" in progress(page)
    assert exported(session_dir, "alice") == EXPECTED_RANKS

    # Undo brings the last prompt back, pre-filled; a changed ranking replaces the undone one in the export.
    before = status(page)
    page.click("#rlhf-undo")
    wait_status(page, before, "Undone")
    prompt, texts = shown(page)
    assert prompt == seen[-1] and progress(page).startswith("alice: prompt 3 of 3")
    picked = [page.locator(f"#rlhf-rank-{k} input:checked").get_attribute("value") for k in range(len(texts))]
    assert picked == [str(WANTED[t]) for t in texts]
    assert prompt not in exported(session_dir, "alice")
    for k in range(len(texts)):  # now everything ties with the first: one completion best, the rest second
        page.click(f"#rlhf-rank-{k} input[value='{1 if k == 0 else 2}']")
    before = status(page)
    page.click("#rlhf-submit")
    wait_status(page, before, "is on disk")
    redone = exported(session_dir, "alice")[prompt]
    source = next(r["completions"] for r in ROWS if r["prompt"] == prompt)
    assert redone == [0 if c == texts[0] else 1 for c in source]
    assert blocked == []  # the page asked nothing of any other host (no fonts, no analytics)


def test_reload_mid_way_resumes(server, browser, session_dir, round_trips):
    page, _ = new_page(browser, server)
    start(page, "bob")
    first = rank(page, round_trips)
    page.locator("#rlhf-rank-0 input[value='1']").click()  # an unconfirmed click, lost with the reload
    page.reload()
    # The name is remembered by the browser; the confirmed judgement by the server.
    assert wait_progress(page, "bob: ").startswith("bob: prompt 2 of 3 · 1 done")
    assert shown(page)[0] != first
    assert page.locator("#rlhf-rank-0 input:checked").count() == 0
    rank(page, round_trips)
    rank(page, round_trips)
    assert exported(session_dir, "bob") == EXPECTED_RANKS


def test_two_labelers_at_once(server, browser, session_dir, round_trips):
    pages = {name: new_page(browser, server)[0] for name in ("carol", "dave")}
    for name, page in pages.items():
        start(page, name)
    # Each labeler has an order of their own (prompts and completions); both submit at the same moment (a click
    # from the page's own JS returns at once, so both requests are in flight together).
    for _ in range(3):
        for page in pages.values():
            prompt, texts = shown(page)
            for k, text in enumerate(texts):
                page.click(f"#rlhf-rank-{k} input[value='{WANTED[text]}']")
        befores = {name: status(page) for name, page in pages.items()}
        for page in pages.values():
            page.evaluate("document.querySelector('#rlhf-submit').click()")
        for name, page in pages.items():
            wait_status(page, befores[name], "is on disk")
    for name, page in pages.items():
        assert "all done, 3 of 3" in progress(page), name
        assert exported(session_dir, name) == EXPECTED_RANKS
    # dave's undo takes back dave's judgement only.
    before = status(pages["dave"])
    pages["dave"].click("#rlhf-undo")
    wait_status(pages["dave"], before, "Undone")
    assert len(exported(session_dir, "dave")) == 2 and exported(session_dir, "carol") == EXPECTED_RANKS


def test_kill_9_loses_no_confirmed_judgement_and_restart_resumes(server, browser, session_dir, round_trips):
    page, _ = new_page(browser, server)
    start(page, "erin")
    confirmed = [rank(page, round_trips), rank(page, round_trips)]
    server.kill9()  # right after the page confirmed: no clean shutdown, no checkpoint of the WAL
    assert set(exported(session_dir, "erin")) == set(confirmed)
    server.start()
    page.reload()
    assert wait_progress(page, "erin: ").startswith("erin: prompt 3 of 3 · 2 done")
    rank(page, round_trips)
    assert exported(session_dir, "erin") == EXPECTED_RANKS


def test_rankings_from_the_page_train_a_reward_model(
    server, browser, session_dir, round_trips, tiny_models, tiny_tokenizer, tmp_path
):
    from rlhf_ext import RankedRewardConfig, RankedRewardTrainer
    from rlhf_ext.labeling import export

    page, _ = new_page(browser, server)
    start(page, "frank")
    for _ in range(3):
        rank(page, round_trips)
    data = export(session_dir / "labels.sqlite", labelers=["frank"])
    assert sorted(data["prompt"]) == sorted(EXPECTED_RANKS)
    trainer = RankedRewardTrainer(
        model=str(tiny_models.reward_model),
        args=RankedRewardConfig(
            output_dir=str(tmp_path / "rm"),
            per_device_train_batch_size=3,
            max_steps=30,
            learning_rate=1e-2,
            use_cpu=True,
            bf16=False,
            report_to="none",
            save_strategy="no",
            logging_steps=5,
            disable_tqdm=True,
            seed=0,
        ),
        train_dataset=data,
        eval_dataset=data,
        processing_class=tiny_tokenizer,
    )
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    assert after["eval_loss"] < before["eval_loss"]
    assert after["eval_accuracy"] == 1.0 > before["eval_accuracy"]


def test_login_required_off_localhost_and_wrong_passwords_refused(playwright, tmp_path):
    """Served on 192.0.2.10 inside a network namespace of its own (a second host, as far as the server and the
    browser can tell), the page asks for a login, refuses a wrong password and an unknown user, and takes the
    labeler's name from the login."""
    chromium = find_chromium()
    try:
        namespace = NetNamespace(f"rlhfext{os.getpid()}").__enter__()
    except OSError as err:
        pytest.skip(f"cannot make a network namespace here (needs root and iproute2): {err}")
    try:
        (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS))
        auth = tmp_path / "users.txt"
        auth.write_text("gina:correct-horse\nhank:battery-staple\n")
        auth.chmod(0o600)
        args = ["--data", str(tmp_path / "data.jsonl"), "--session", str(tmp_path / "s.sqlite")]
        # Without a login, the server refuses the address and binds nothing.
        refused = LabelServer(args, tmp_path / "refused.log", host=namespace.address, prefix=namespace.prefix)
        with pytest.raises(RuntimeError, match="refusing to serve the labeling page on '192.0.2.10' without a login"):
            refused.start(wait_for_http=False)
        server = LabelServer(
            [*args, "--auth_file", str(auth)], tmp_path / "server.log", host=namespace.address, prefix=namespace.prefix
        ).start(wait_for_http=False)
        try:
            outside = launch_chromium(playwright, executable=namespace.wrapper(chromium, tmp_path))
            try:
                page = outside.new_page()
                page.set_default_timeout(30_000)
                page.goto(server.url)
                for user, password in (("gina", "wrong"), ("mallory", "correct-horse"), ("gina", "")):
                    page.fill("input[type='text'], input[name='username']", user)
                    page.fill("input[type='password']", password)
                    page.get_by_role("button", name="Login").click()
                    page.get_by_text("Incorrect Credentials").wait_for()
                    assert page.locator("#rlhf-prompt").count() == 0
                page.fill("input[type='text'], input[name='username']", "gina")
                page.fill("input[type='password']", "correct-horse")
                page.get_by_role("button", name="Login").click()
                assert wait_progress(page, "gina: ").startswith("gina: prompt 1 of 3")
                assert not page.locator("#rlhf-name").is_visible()  # the login is the name
            finally:
                outside.close()
        finally:
            server.stop()
    finally:
        namespace.__exit__()
