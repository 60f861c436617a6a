// Confirmation dialogs: a reason is required, and when this tab has no API token (or the daemon
// just refused the one it has) the dialog asks for it too, so the request goes out with it.
// A token typed here is kept for this tab only (sessionStorage).
const dialogs = {};

/** Adds the token field after the reason; shown only when needed. */
function tokenField(name, after) {
  const box = el("div", "dialog-token");
  const label = el("label", "", "API token (kept in this tab only)");
  const input = el("input");
  input.type = "password";
  input.id = name + "-token";
  input.autocomplete = "off";
  input.spellcheck = false;
  label.htmlFor = input.id;
  box.append(label, input);
  after.after(box);
  return { box, input };
}

/**
 * Wires one dialog. `send(reason)` performs the request and returns the API result; a 401 or
 * 403 brings the dialog back with the reason kept and the token asked for. `opts` (optional):
 * `fields`, more inputs of the dialog (kept when it comes back); `check()`, why they do not do
 * yet (or ""); `invalid`, bring the dialog back on a 400 too, saying what the server refused,
 * with what was typed kept and the focus on the first field.
 */
function reasonDialog(name, dialogId, send, opts) {
  const extra = (opts && opts.fields) || [];
  const check = (opts && opts.check) || (() => "");
  const dialog = $(dialogId), reason = $(name + "-reason"), confirm = $("confirm-" + name);
  const tok = tokenField(name, reason);
  const actions = dialog.querySelector(".dialog-actions");
  const error = el("p", "dialog-error");
  error.hidden = true;
  actions.before(error);
  const why = el("p", "why");
  why.id = confirm.id + "-why";
  confirm.setAttribute("aria-describedby", why.id);
  actions.after(why);
  const update = () => {
    const text = reason.value;
    const needToken = !tok.box.hidden && state.tokenRequired && !tok.input.value.trim();
    explain(confirm, check() || (text.trim().length === 0 || text.length > 500 ? "Enter a reason to continue." : needToken ? "Enter an API token to continue." : ""));
  };
  /** `refused`: the message it comes back with; `focus`: where the focus goes then (the token
   * field, asked for, unless given). */
  const open = (refused, focus) => {
    const askToken = !token() || (!!refused && !focus);
    tok.box.hidden = !askToken;
    error.textContent = refused || "";
    error.hidden = !refused;
    update();
    dialog.showModal();
    (focus || (refused ? tok.input : extra[0] || reason)).focus();
  };
  reason.addEventListener("input", update);
  for (const f of extra) {
    f.addEventListener("input", update);
    f.addEventListener("change", update);
  }
  tok.input.addEventListener("input", update);
  $("cancel-" + name).addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    reason.value = "";
    tok.input.value = "";
    update();
  });
  confirm.addEventListener("click", async () => {
    const text = reason.value.trim();
    const typed = tok.input.value.trim();
    if (typed) setToken(typed);
    dialog.close();
    const r = await send(text);
    if (r && (r.status === 401 || r.status === 403)) {
      if (r.status === 401) setToken("");
      open(r.status === 401 ? "Not sent (" + r.error + "): enter an API token." : "This token may not do that (" + r.error + "): enter one that may.");
      reason.value = text;
      update();
    } else if (r && r.status === 400 && opts && opts.invalid) {
      // The error names the field it is about ("duration: …"): the focus goes there.
      const named = extra.find((f) => f.dataset.api && (r.error || "").startsWith(f.dataset.api + ":"));
      open("Not accepted: " + r.error, named || extra[0] || reason);
      reason.value = text;
      update();
    }
  });
  dialogs[name] = { dialog, open: () => open(""), update };
}
