// The transfers list: one request for the whole page of rows (the list API with
// the page's offset), about every second while a row is unfinished and the tab
// visible, every 15 s otherwise.
(function () {
  "use strict";
  var table = document.getElementById("transfers");
  if (!table || !window.DTN) return;
  var DTN = window.DTN;
  var busy = true;

  function row(id) { return table.querySelector('tr[data-transfer-id="' + id + '"]'); }
  function set(tr, field, text) {
    var node = tr.querySelector('[data-field="' + field + '"]');
    if (node && node.textContent !== text) node.textContent = text;
  }

  DTN.poll(function () {
    if (!table.querySelector("tr[data-transfer-id]")) return false;
    return DTN.api("GET", table.dataset.statusUrl).then(function (result) {
      if (!result.ok || !result.body) return;
      busy = false;
      (result.body.results || []).forEach(function (s) {
        var tr = row(s.transfer_id);
        if (!tr) return;
        if (!DTN.isFinished(s.state)) busy = true;
        DTN.renderBadge(tr.querySelector('[data-field="state"]'), s.state);
        DTN.renderProgress(tr.querySelector("[data-progress]"), s);
        set(tr, "files", s.files.transferred + (s.files.total ? " / " + s.files.total : ""));
        set(tr, "bytes", DTN.size(s.bytes.transferred) + (s.bytes.total ? " / " + DTN.size(s.bytes.total) : ""));
      });
    });
  }, function () { return busy ? 1000 : 15000; }, 15000);
})();
