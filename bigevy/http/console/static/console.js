// The console's own behaviour, kept to what plain HTML cannot do. No inline scripts: the
// Content-Security-Policy allows scripts from this origin's files only.
"use strict";

// htmx requests carry the session's CSRF token as a header (forms carry it as a field).
document.addEventListener("htmx:configRequest", (event) => {
  const token = document.body.dataset.csrf;
  if (token) event.detail.headers["X-CSRF-Token"] = token;
});

// Copy buttons: <button data-copy="ID"> copies the value of the field with that id.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  const said = button.parentElement.querySelector(".copied");
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
  } catch {
    document.execCommand("copy"); // a page served over plain http has no clipboard API
  }
  if (said) said.textContent = "Copied.";
});

// Upload progress: a form with data-progress="ID" shows its upload in that <progress>.
document.addEventListener("htmx:xhr:progress", (event) => {
  const form = event.target.closest("[data-progress]");
  if (!form || !event.detail.lengthComputable) return;
  const bar = document.getElementById(form.dataset.progress);
  const percent = Math.round((100 * event.detail.loaded) / event.detail.total);
  bar.value = percent;
  bar.textContent = `${percent} %`;
  const state = form.querySelector("[role=status]");
  if (state) {
    state.textContent = percent < 100 ? `Uploading: ${percent} %` : "Uploaded; reading and embedding…";
  }
});
