// Small progressive enhancements; every page works without them.
document.addEventListener("DOMContentLoaded", () => {
  // Rich-text composer: mirror the editable area into the hidden field on submit.
  document.querySelectorAll("[data-editor]").forEach((editor) => {
    const field = document.getElementById(editor.dataset.editor);
    const form = field.form;
    form.addEventListener("submit", () => { field.value = editor.innerHTML; });
    document.querySelectorAll("[data-command]").forEach((button) => {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        document.execCommand(button.dataset.command, false, button.dataset.value || null);
        editor.focus();
      });
    });
  });
  // Live campaign progress: poll the JSON view and update the figures.
  document.querySelectorAll("[data-progress]").forEach((box) => {
    const refresh = async () => {
      const response = await fetch(box.dataset.progress, { headers: { accept: "application/json" } });
      if (!response.ok) return;
      const data = await response.json();
      for (const [key, value] of Object.entries(data.counts || {})) {
        const cell = box.querySelector(`[data-count="${key}"]`);
        if (cell) cell.textContent = value;
      }
      const bar = box.querySelector(".progress > span");
      if (bar) bar.style.width = `${data.percent || 0}%`;
      const state = box.querySelector("[data-state]");
      if (state) state.textContent = data.state;
      const holds = box.querySelector("[data-holds]");
      if (holds && Array.isArray(data.holds)) {
        holds.replaceChildren(...data.holds.map((line) => Object.assign(document.createElement("li"), { textContent: line })));
      }
    };
    refresh();
    setInterval(refresh, 2000);
  });
  // Sent messages: their delivery state, read again every few seconds (a sent one may still bounce).
  const sent = [...document.querySelectorAll("[data-sent]")];
  if (sent.length) {
    const ids = [...new Set(sent.map((el) => el.dataset.sent))].slice(0, 500).join(",");
    const refresh = async () => {
      const response = await fetch(`/inbox/states?ids=${ids}`, { headers: { accept: "application/json" } });
      if (!response.ok) return;
      const states = await response.json();
      for (const el of sent) {
        const found = states[el.dataset.sent];
        if (found && el.textContent !== found.state) {
          el.textContent = found.state;
          el.className = `state ${found.state}`;
        }
      }
    };
    setInterval(refresh, 2000);
  }
  // A Sieve error: put the cursor where the script went wrong.
  document.querySelectorAll("textarea[data-error-line]").forEach((area) => {
    const lines = area.value.split("\n");
    const line = Math.max(1, Number(area.dataset.errorLine)), column = Math.max(1, Number(area.dataset.errorColumn));
    let offset = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
    offset += column - 1;
    area.focus();
    area.setSelectionRange(offset, Math.min(offset + 1, area.value.length));
  });
  // Confirm destructive actions.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => { if (!confirm(form.dataset.confirm)) event.preventDefault(); });
  });
});
