// The transfers list. Unfinished rows follow their own status JSON about every
// second while the tab is visible (every 15 s while hidden); the whole page of
// rows is asked for again (the list API with the page's offset) only every 15 s,
// to catch a restart made elsewhere: each row of it carries its throughput
// series, too heavy to fetch fifty times a second.
(function () {
  "use strict";
  var table = document.getElementById("transfers");
  if (!table || !window.DTN) return;
  var DTN = window.DTN;
  var lastFullAt = Date.now();

  function rows() { return Array.prototype.slice.call(table.querySelectorAll("tr[data-transfer-id]")); }
  function set(tr, field, text) {
    var node = tr.querySelector('[data-field="' + field + '"]');
    if (node && node.textContent !== text) node.textContent = text;
  }
  function render(tr, s) {
    DTN.renderBadge(tr.querySelector('[data-field="state"]'), s.state);
    DTN.renderProgress(tr.querySelector("[data-progress]"), s);
    // Done is sent + already there, each byte once: the transfer page's and the CLI's figure.
    set(tr, "files", (s.files.transferred + s.files.skipped) + (s.files.total ? " / " + s.files.total : ""));
    set(tr, "bytes", DTN.size(s.bytes.transferred + s.bytes.skipped) + (s.bytes.total ? " / " + DTN.size(s.bytes.total) : ""));
  }
  function unfinished() {
    return rows().filter(function (tr) { return !DTN.isFinished(tr.querySelector('[data-field="state"]').textContent.trim()); });
  }

  DTN.poll(function () {
    if (!rows().length) return false;
    if (Date.now() - lastFullAt >= 15000 || !unfinished().length) {
      lastFullAt = Date.now();
      return DTN.api("GET", table.dataset.statusUrl).then(function (result) {
        if (!result.ok || !result.body) return;
        (result.body.results || []).forEach(function (s) {
          var tr = table.querySelector('tr[data-transfer-id="' + s.transfer_id + '"]');
          if (tr) render(tr, s);
        });
      });
    }
    return Promise.all(unfinished().map(function (tr) {
      return DTN.api("GET", tr.dataset.statusUrl).then(function (result) {
        if (result.ok && result.body) render(tr, result.body);
      });
    }));
  }, function () { return unfinished().length ? 1000 : 15000; }, 15000);
})();
