// Rubric form: every change is saved at once (the comment after a short pause), so a reload
// never loses work; "Submit scores" closes the sheet.
(function () {
  "use strict";
  const form = document.getElementById("sheet");
  if (!form) return;
  const api = form.dataset.api;
  const status = document.getElementById("save-status");
  const comment = document.getElementById("comment");
  const submitButton = document.getElementById("submit-sheet");
  let timer = null;
  let pending = Promise.resolve();

  function show(text, bad) {
    status.textContent = text;
    status.classList.toggle("error", !!bad);
  }

  function lock(sheet) {
    form.dataset.submitted = "1";
    form.querySelectorAll("input, textarea, button").forEach((el) => { el.disabled = true; });
    show("Submitted " + sheet.submitted_at + ".");
  }

  async function send(method, url, body) {
    const response = await fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || ("error " + response.status));
    return data;
  }

  function save(body) {
    show("Saving…");
    pending = pending.then(() => send("PUT", api, body))
      .then((sheet) => show("Saved " + sheet.updated_at + "."))
      .catch((err) => show("Not saved: " + err.message, true));
    return pending;
  }

  form.addEventListener("change", (event) => {
    const input = event.target;
    if (input.type === "radio") {
      const scores = {};
      scores[input.name] = parseInt(input.value, 10);
      save({ scores: scores });
    }
  });

  comment.addEventListener("input", () => {
    clearTimeout(timer);
    show("Typing…");
    timer = setTimeout(() => save({ comment: comment.value }), 600);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearTimeout(timer);
    await save({ comment: comment.value });
    if (!window.confirm("Submit your scores? You cannot change them afterwards.")) return;
    try {
      lock(await send("POST", api + "/submit"));
    } catch (err) {
      show("Not submitted: " + err.message, true);
    }
  });

  if (form.dataset.submitted) submitButton.disabled = true;
})();
