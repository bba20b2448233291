// shouhou console: live queue (server-sent events), keyboard shortcuts and the live guard check.
(function () {
  "use strict";
  const csrf = (document.querySelector('meta[name="csrf"]') || {}).content || "";
  const page = document.body.dataset.page;
  const typing = (e) => /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName) || e.ctrlKey || e.metaKey || e.altKey;

  if (page === "queue") {
    let sel = -1;
    const rows = () => Array.from(document.querySelectorAll("#queue-rows tr[data-id]"));
    const select = (i) => {
      const r = rows();
      if (!r.length) return;
      sel = Math.max(0, Math.min(i, r.length - 1));
      r.forEach((row, k) => row.classList.toggle("sel", k === sel));
      r[sel].scrollIntoView({ block: "nearest" });
    };
    const current = () => { const r = rows(); return sel >= 0 && r[sel] ? r[sel].dataset.id : null; };
    document.addEventListener("keydown", (e) => {
      if (typing(e)) return;
      const id = current();
      if (e.key === "j") select(sel + 1);
      else if (e.key === "k") select(sel - 1);
      else if (e.key === "Enter" && id) location.href = "/console/drafts/" + id;
      else if (e.key === "a" && id) {
        const f = document.getElementById("quick-approve");
        if (f) { f.action = "/console/drafts/" + id + "/approve"; f.submit(); }
      } else if (e.key === "e" && id) location.href = "/console/drafts/" + id + "#edit";
      else if (e.key === "r" && id) location.href = "/console/drafts/" + id + "#reject";
    });
    if (window.EventSource) {
      // The page knows the queue's fingerprint when it was rendered; refresh on any other.
      let shown = document.getElementById("queue").dataset.mark;
      const es = new EventSource("/console/events");
      es.addEventListener("queue", async (ev) => {
        if (ev.data === shown) return;
        shown = ev.data;
        const keep = current();
        const res = await fetch("/console/queue/rows" + location.search, { credentials: "same-origin" });
        if (!res.ok) return;
        document.getElementById("queue-rows").innerHTML = await res.text();
        document.getElementById("count").textContent = rows().length;
        const i = rows().findIndex((r) => r.dataset.id === keep);
        if (i >= 0) select(i);
        document.body.dataset.refreshed = String(Date.now());
      });
    }
  }

  if (page === "draft") {
    const text = document.getElementById("edit-text");
    const reason = document.getElementById("reject-reason");
    document.addEventListener("keydown", (e) => {
      if (typing(e)) return;
      if (e.key === "a") { const b = document.getElementById("approve"); if (b && !b.disabled) { e.preventDefault(); b.form.submit(); } }
      else if (e.key === "e" && text) { e.preventDefault(); text.focus(); }
      else if (e.key === "r" && reason) { e.preventDefault(); reason.focus(); }
    });
    if (location.hash === "#edit" && text) text.focus();
    if (location.hash === "#reject" && reason) reason.focus();
    if (text) {
      const labels = JSON.parse(document.getElementById("labels").textContent);
      const preview = document.getElementById("check-preview");
      const list = document.getElementById("check-findings");
      const status = document.getElementById("check-status");
      const send = document.getElementById("send-edit");
      const esc = (s) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
      let timer = null, seq = 0;
      const render = (value, v) => {
        // The server splits the text into segments; a marked one carries its rule.
        const reason = (rule) => (v.findings.find((f) => f.rule === rule) || {}).message || rule;
        const html = v.segments.map((s) => s.hl
          ? '<mark class="bad" data-rule="' + esc(s.hl) + '" title="' + esc(reason(s.hl)) + '">' + esc(s.t) + "</mark>"
          : esc(s.t)).join("");
        preview.innerHTML = v.verdict === "pass" ? "" : html;
        list.innerHTML = v.findings.map((f) => "<li><strong>" + esc(labels.families[f.rule.split(".")[0]] || f.rule) + "</strong> <code>" + esc(f.rule) + "</code>：" + esc(f.message) +
          (f.suggestion ? '<br>建议改为：<q>' + esc(f.suggestion) + '</q> <button type="button" class="use" data-s="' + esc(f.suggestion) + '">使用此说法</button>' : "") + "</li>").join("");
        status.textContent = v.verdict === "pass" ? "安全检查通过。" : "安全检查拦截：不能发送。";
        status.className = v.verdict === "pass" ? "ok" : "error";
        send.disabled = v.verdict !== "pass";
        document.getElementById("check").dataset.verdict = v.verdict;
      };
      const check = async () => {
        const mine = ++seq, value = text.value;
        const res = await fetch("/console/api/check", {
          method: "POST", credentials: "same-origin",
          headers: { "content-type": "application/json", "x-csrf-token": csrf },
          body: JSON.stringify({ draft_id: Number(text.dataset.draft), text: value }),
        });
        if (!res.ok || mine !== seq) return;
        render(value, await res.json());
      };
      list.addEventListener("click", (e) => {
        const b = e.target.closest("button.use");
        if (!b) return;
        text.value = b.dataset.s;
        text.dispatchEvent(new Event("input"));
        text.focus();
      });
      text.addEventListener("input", () => { clearTimeout(timer); send.disabled = true; timer = setTimeout(check, 250); });
    }
  }
})();
