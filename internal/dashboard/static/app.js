// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // Filter forms apply a changed select at once (text fields still need Enter or Apply).
  document.querySelectorAll("form[data-autosubmit] select").forEach(function (sel) {
    sel.addEventListener("change", function () {
      var f = sel.form;
      var page = f.querySelector("input[name=page]");
      if (page) page.remove();
      f.requestSubmit ? f.requestSubmit() : f.submit();
    });
  });
  // "/" focuses the search box, as on most code and issue trackers.
  document.addEventListener("keydown", function (e) {
    if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) return;
    var q = document.getElementById("q");
    if (q) { e.preventDefault(); q.focus(); q.select(); }
  });
})();
