"""The ranking page: a Gradio app over a :class:`~rlhf_ext.labeling.store.LabelStore`.

One prompt at a time, its K completions in the labeler's own order, a rank picker (1 = best) beside each; equal
ranks are a tie, and every completion needs a rank before Submit is accepted. Skip, flags (broken / unsafe), a note,
Undo (takes back the labeler's latest judgement and shows that prompt again, pre-filled), progress ("n of N").
Keyboard: 1-9 ranks the selected completion and selects the next, up/down (or j/k) moves the selection, Enter submits,
s skips, u undoes, b / x toggle the broken / unsafe flags, n jumps into the note (Esc leaves it).

Completions are untrusted model output: they are shown only as the value of read-only text boxes, never as HTML or
Markdown, so ``<script>`` or ``<img onerror=...>`` in a completion is text on the page and never runs.

The labeler is who logged in (Gradio auth) when the app has users; otherwise the name typed on the page, kept in
the browser's local storage so a reload resumes. Every handler takes the labeler from the server side (the login,
or the name stored in the session state), never from a value the page could forge per request.
"""

import time
from typing import Any

from .store import FLAGS, LabelingError, LabelStore, Task

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# System fonts only: the default theme pulls Google Fonts, which a labeling server on a closed network cannot reach.
_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
_MONO = ["ui-monospace", "monospace"]

CSS = """
.rlhf-completion { border: 2px solid transparent; border-radius: 8px; }
.rlhf-completion.rlhf-selected { border-color: var(--color-accent); }
#rlhf-status { min-height: 1.5em; }
"""

# Keyboard shortcuts. Keys typed into a text field (the name, the note) are left alone, except Esc, which leaves it.
SHORTCUTS_JS = """
<script>
(() => {
  let selected = 0;
  const rows = () => [...document.querySelectorAll('.rlhf-completion')].filter(e => e.offsetParent !== null);
  const mark = () => rows().forEach((e, i) => e.classList.toggle('rlhf-selected', i === selected));
  const click = (sel) => { const e = document.querySelector(sel); if (e) e.click(); };
  document.addEventListener('keydown', (ev) => {
    const t = ev.target;
    const typing = t && (t.tagName === 'TEXTAREA' || (t.tagName === 'INPUT' && t.type !== 'radio' && t.type !== 'checkbox'));
    if (ev.key === 'Escape' && typing) { t.blur(); return; }
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const visible = rows();
    if (!visible.length && ev.key !== 'u') return;
    if (selected >= visible.length) selected = 0;
    if (/^[1-9]$/.test(ev.key)) {
      const input = visible[selected] && visible[selected].querySelector('input[type=radio][value="' + ev.key + '"]');
      if (input) { input.click(); selected = Math.min(selected + 1, visible.length - 1); }
    } else if (ev.key === 'ArrowDown' || ev.key === 'j') { selected = Math.min(selected + 1, visible.length - 1); }
    else if (ev.key === 'ArrowUp' || ev.key === 'k') { selected = Math.max(selected - 1, 0); }
    else if (ev.key === 'Enter') { click('#rlhf-submit'); selected = 0; }
    else if (ev.key === 's') { click('#rlhf-skip'); selected = 0; }
    else if (ev.key === 'u') { click('#rlhf-undo'); selected = 0; }
    else if (ev.key === 'b') { click('#rlhf-flags input[value="broken"]'); }
    else if (ev.key === 'x') { click('#rlhf-flags input[value="unsafe"]'); }
    else if (ev.key === 'n') { const n = document.querySelector('#rlhf-note textarea'); if (n) { n.focus(); } }
    else { return; }
    ev.preventDefault();
    mark();
  });
  let shownPrompt = null;  // a new prompt on the page selects its first completion again
  new MutationObserver(() => {
    const p = document.querySelector('#rlhf-prompt textarea');
    const value = p ? p.value : null;
    if (value !== shownPrompt) { shownPrompt = value; selected = 0; }
    mark();
  }).observe(document.documentElement, {childList: true, subtree: true, characterData: true});
})();
</script>
"""

HELP = (
    "Rank the completions of each prompt: **1 = best**. Give two completions the same rank for a tie. Every "
    "completion needs a rank before you submit. Skip what you cannot judge; flag a broken or unsafe prompt or "
    "completion, and add a note if useful. Keys: `1`-`9` rank the selected completion, `up`/`down` move, "
    "`Enter` submit, `s` skip, `u` undo, `b` / `x` flag broken / unsafe, `n` note."
)


def format_text(value: Any) -> str:
    """A prompt or completion as plain text: a string as is, chat messages as ``role: content`` paragraphs."""
    if isinstance(value, str):
        return value
    parts = []
    for message in value:
        content = message.get("content")
        if isinstance(content, list):  # content parts
            content = " ".join(str(p.get("text", p)) if isinstance(p, dict) else str(p) for p in content)
        parts.append(f"{message.get('role', '?')}: {content if content is not None else ''}")
    return "\n\n".join(parts)


def build_app(store: LabelStore, *, require_login: bool = False, title: str = "rlhf_ext: rank the completions"):
    """The Gradio ``Blocks`` of the page. With ``require_login`` the labeler is the logged-in user."""
    import gradio as gr

    max_k = store.max_completions

    def labeler_of(state: dict, request: gr.Request | None) -> str | None:
        if require_login:
            return getattr(request, "username", None)
        return state.get("labeler")

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        state = gr.State({})
        saved_name = gr.BrowserState("", storage_key="rlhf_ext_labeler", secret=store.browser_secret)
        gr.Markdown(f"## Rank the completions\n{HELP}")
        with gr.Row(visible=not require_login) as name_row:
            # Locked until the page-load event has answered: a Start answered before it would be undone by it.
            name_box = gr.Textbox(
                label="Your name",
                placeholder="as you want it in the data",
                elem_id="rlhf-name",
                scale=3,
                interactive=False,
            )
            start = gr.Button("Start", elem_id="rlhf-start", scale=1, interactive=False)
        progress = gr.Markdown("", elem_id="rlhf-progress")
        prompt = gr.Textbox(
            label="Prompt", interactive=False, lines=2, max_lines=12, elem_id="rlhf-prompt", visible=False
        )
        rows, texts, pickers = [], [], []
        for k in range(max_k):
            with gr.Row(visible=False, elem_id=f"rlhf-completion-{k}", elem_classes=["rlhf-completion"]) as row:
                texts.append(
                    gr.Textbox(
                        label=f"Completion {LETTERS[k]}",
                        interactive=False,
                        lines=2,
                        max_lines=12,
                        elem_id=f"rlhf-text-{k}",
                        scale=4,
                    )
                )
                pickers.append(gr.Radio([], label="Rank (1 = best)", elem_id=f"rlhf-rank-{k}", scale=2))
            rows.append(row)
        with gr.Row(visible=False) as extras:
            flags = gr.CheckboxGroup(list(FLAGS), label="Flags", elem_id="rlhf-flags", scale=1)
            note = gr.Textbox(label="Note (optional)", lines=1, max_lines=4, elem_id="rlhf-note", scale=3)
        with gr.Row():
            submit = gr.Button("Submit ranking", variant="primary", elem_id="rlhf-submit", visible=False)
            skip = gr.Button("Skip", elem_id="rlhf-skip", visible=False)
            undo = gr.Button("Undo last", elem_id="rlhf-undo", visible=False)
        status = gr.Markdown("", elem_id="rlhf-status")

        task_outputs = [
            state,
            name_row,
            progress,
            prompt,
            *rows,
            *texts,
            *pickers,
            extras,
            flags,
            note,
            submit,
            skip,
            undo,
        ]

        def render(labeler: str | None, message: str, state: dict) -> list:
            """Updates for ``task_outputs`` + status: the labeler's next prompt, the end, or the name prompt."""
            state = {"labeler": state.get("labeler")}
            task: Task | None = store.next_task(labeler) if labeler else None
            off = gr.update(visible=False)
            if task is None:
                text = ""
                if labeler is not None:
                    done, total = store.progress(labeler)
                    text = f"**{labeler}**: all done, {done} of {total} prompts judged. Thank you!"
                return [
                    state,
                    gr.update(visible=labeler is None and not require_login),
                    text,
                    off,
                    *[off] * (2 * max_k),
                    *[gr.update(value=None, visible=False)] * max_k,
                    off,
                    gr.update(value=[]),
                    gr.update(value=""),
                    off,
                    off,
                    gr.update(visible=labeler is not None),
                    message,
                ]
            k = len(task.completions)
            state.update(item_id=task.item_id, k=k, shown_at=time.time())
            previous = task.previous or {}
            shown_ranks = previous.get("shown_ranks")
            choices = [str(r) for r in range(1, k + 1)]
            picker_values = []
            for p in range(max_k):
                if p < k:
                    value = None
                    if shown_ranks is not None:
                        value = str(sorted(set(shown_ranks)).index(shown_ranks[p]) + 1)
                    picker_values.append(gr.update(choices=choices, value=value, visible=True))
                else:
                    picker_values.append(gr.update(value=None, visible=False))
            return [
                state,
                gr.update(visible=False),
                f"**{task.labeler}**: prompt {task.done + 1} of {task.total} · {task.done} done",
                gr.update(value=format_text(task.prompt), visible=True),
                *[gr.update(visible=p < k) for p in range(max_k)],
                *[
                    gr.update(value=format_text(task.completions[p]) if p < k else "", visible=p < k)
                    for p in range(max_k)
                ],
                *picker_values,
                gr.update(visible=True),
                gr.update(value=previous.get("flags", [])),
                gr.update(value=previous.get("note", "")),
                gr.update(visible=True),
                gr.update(visible=True),
                gr.update(visible=True),
                message,
            ]

        def on_load(saved: str, state: dict, request: gr.Request):
            labeler, message = None, ""
            if require_login:
                labeler = labeler_of(state, request)
            elif saved:
                try:
                    labeler = store.check_labeler(saved)
                except LabelingError as err:
                    message = f"{err}"
            state = {"labeler": labeler}
            unlock = gr.update(interactive=True)
            return [*render(labeler, message, state), labeler or "", unlock, unlock]

        def on_start(name: str, state: dict):
            try:
                labeler = store.check_labeler(name)
            except LabelingError as err:
                return [*render(None, f"{err}", {}), ""]
            state = {"labeler": labeler}
            return [*render(labeler, f"Welcome, {labeler}.", state), labeler]

        state_box = state

        def on_judgement(skipping: bool):
            def handler(values: dict, request: gr.Request):
                state, flag_values, note_value = values[state_box], values[flags], values[note]
                labeler = labeler_of(state, request)
                if labeler is None or "item_id" not in state:
                    return render(labeler, "Nothing to submit.", state)
                k = state["k"]
                ranks = None
                if not skipping:
                    picked = [values[picker] for picker in pickers[:k]]
                    missing = sum(v in (None, "") for v in picked)
                    if missing:
                        return (
                            [state]
                            + [gr.update()] * (len(task_outputs) - 1)
                            + [f"Rank every completion first: {missing} of {k} have no rank."]
                        )
                    ranks = [int(v) for v in picked]
                try:
                    judgement_id = store.submit(
                        labeler,
                        state["item_id"],
                        ranks,
                        flags=flag_values or [],
                        note=note_value or "",
                        seconds=round(time.time() - state["shown_at"], 3),
                    )
                except LabelingError as err:
                    return render(labeler, f"{err}", state)
                verb = "Skipped" if skipping else "Saved"
                return render(labeler, f"{verb}: judgement #{judgement_id} is on disk.", state)

            return handler

        def on_undo(state: dict, request: gr.Request):
            labeler = labeler_of(state, request)
            if labeler is None:
                return render(None, "", state)
            item_id = store.undo(labeler)
            message = "Nothing to undo." if item_id is None else "Undone: your last judgement is shown again."
            return render(labeler, message, state)

        all_outputs = [*task_outputs, status]
        # No progress overlays: a round trip takes a fraction of a second, and the overlay's timer would flicker.
        quiet = {"show_progress": "hidden"}
        demo.load(on_load, [saved_name, state], [*all_outputs, saved_name, name_box, start], **quiet)
        for trigger in (start.click, name_box.submit):
            trigger(on_start, [name_box, state], [*all_outputs, saved_name], **quiet)
        inputs = {state, flags, note, *pickers}
        submit.click(on_judgement(False), inputs, all_outputs, **quiet)
        skip.click(on_judgement(True), inputs, all_outputs, **quiet)
        undo.click(on_undo, [state], all_outputs, **quiet)
    return demo


def theme():
    import gradio as gr

    return gr.themes.Default(font=_FONTS, font_mono=_MONO)
