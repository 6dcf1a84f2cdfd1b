// The reveal switch: one POST, then the page reloads with names shown or hidden.
(function () {
  "use strict";
  const form = document.getElementById("reveal");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch(form.dataset.api, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf },
      body: JSON.stringify({ revealed: form.dataset.revealed !== "1" }),
    });
    if (response.ok) window.location.reload();
  });
})();
