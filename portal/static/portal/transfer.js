// The transfer page: the progress block, the chart, the network-check card and
// the live numbers follow the status JSON about every second while the tab is
// visible (every 15 s while hidden or finished: a restart made elsewhere still
// shows). When the state changes, the parts the server decides (buttons,
// summary, attempts, files, events) are fetched again as HTML and swapped in
// place: no reload, and no button logic copied here.
(function () {
  "use strict";
  var box = document.getElementById("transfer");
  if (!box || !window.DTN) return;
  var DTN = window.DTN;
  var progress = box.querySelector("[data-progress]");
  var chart = document.getElementById("throughput");
  var card = document.getElementById("network-check");
  var announce = document.getElementById("announce");
  var ticks = 0;
  var last = {state: box.dataset.state, stop: box.dataset.stopRequested === "true"};

  function setText(id, text) {
    var node = document.getElementById(id);
    if (node && node.textContent !== text) node.textContent = text;
  }

  function swapRegions() {
    return fetch(location.pathname, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var focused = document.activeElement;
        var focusedRegion = null, focusedAction = focused && focused.form ? focused.form.getAttribute("action") : null;
        document.querySelectorAll("[data-swap]").forEach(function (old) {
          var replacement = fresh.getElementById(old.id);
          if (!replacement) return;
          if (old.contains(focused)) focusedRegion = old.id;
          old.replaceWith(document.importNode(replacement, true));
        });
        if (focusedRegion) {
          // Keep the keyboard where it was: the same button if it is still offered, else the region's first one.
          var region = document.getElementById(focusedRegion);
          var same = focusedAction && region.querySelector('form[action="' + focusedAction + '"] button');
          var target = same || region.querySelector("button, a");
          if (target) target.focus();
        }
      })
      .catch(function () {});
  }

  function render(s) {
    DTN.renderProgress(progress, s);
    DTN.renderBadge(document.getElementById("state"), s.state);
    var f = s.files, b = s.bytes;
    setText("files", f.transferred + " transferred, " + f.verified + " verified, " + f.skipped + " skipped, " + f.failed + " failed, of " + f.total);
    setText("bytes", DTN.size(b.transferred) + " transferred, " + DTN.size(b.verified) + " verified, " + DTN.size(b.skipped) + " skipped, " + DTN.size(b.failed) + " failed, of " + DTN.size(b.total) + "; " + DTN.size(b.resent || 0) + " re-sent");
    setText("speed", (s.speed !== null ? DTN.rate(s.speed) + " now; " : "") + (s.effective_speed !== null ? DTN.rate(s.effective_speed) + " overall" : "not started") + (s.eta !== null && !DTN.isFinished(s.state) ? "; about " + DTN.duration(s.eta) + " left" : ""));
    setText("faults", s.faults + " retries");
    var check = s.network_check || null;
    var predicted = check && check.predicted_bytes_per_s ? check.predicted_bytes_per_s : null;
    chart.hidden = !DTN.renderChart(chart, s.throughput, s.stalls, predicted);
    card.hidden = !DTN.renderNetworkCheck(card, check);
  }

  DTN.poll(function () {
    return DTN.api("GET", box.dataset.statusUrl).then(function (result) {
      if (!result.ok) return result.status === 404 ? false : undefined;  // deleted elsewhere: stop asking
      var s = result.body;
      render(s);
      ticks++;
      var changed = s.state !== last.state || s.stop_requested !== last.stop;
      if (changed) {
        announce.textContent = "Transfer " + s.state + (s.stop_requested && !DTN.isFinished(s.state) ? ", stop requested" : "") + ".";
        last = {state: s.state, stop: s.stop_requested};
        box.dataset.state = s.state;
        box.dataset.stopRequested = String(s.stop_requested);
        return swapRegions();
      }
      // Files and events fill in while it runs: refresh those tables now and then.
      if (!DTN.isFinished(s.state) && ticks % 10 === 0) return swapRegions();
    });
  }, function () { return DTN.isFinished(last.state) ? 15000 : 1000; }, 15000);
})();
