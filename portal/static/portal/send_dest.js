// The send page's second pane: the grant's folder at the receiver (what is already there, with sizes), listed by the
// receiver's agent through the side channel (POST /api/v1/grants/{id}/listing, then poll the task). "Send into this
// folder" puts the folder into the destination prefix. Server strings go in as textContent only.
(function () {
  "use strict";
  var pane = document.getElementById("dest");
  var open = document.getElementById("browse-dest");
  if (!pane || !open || !window.DTN) return;
  var DTN = window.DTN;
  var grantIds = JSON.parse(document.getElementById("grant-ids").textContent || "{}");
  var choice = document.getElementById("id_receiver_choice");
  var typed = document.getElementById("id_receiver");
  var prefix = document.getElementById("id_prefix");
  var entries = document.getElementById("dest-entries");
  var status = document.getElementById("dest-status");
  var shown = document.getElementById("dest-path");
  var up = document.getElementById("dest-up");
  var placeholder = document.getElementById("send-form").dataset.placeholder;
  var current = ".";

  function grantId() {
    var receiver = (choice && choice.value) || (typed && typed.value.trim());
    return receiver ? grantIds[receiver] : null;
  }

  function list(path) {
    var grant = grantId();
    if (!grant) { status.textContent = "Choose a receiver granted to you first."; entries.textContent = ""; return; }
    var base = pane.dataset.listingUrl.replace(placeholder, grant);
    status.textContent = "Asking the receiver what is in " + (path === "." ? "your folder" : path) + "…";
    entries.textContent = "";
    DTN.api("POST", base, {path: path}).then(function (created) {
      if (!created.ok) throw new Error(DTN.errorText(created));
      var started = Date.now();
      return new Promise(function (resolve, reject) {
        function check() {
          DTN.api("GET", base + "/" + created.body.task_id).then(function (r) {
            if (!r.ok) return reject(new Error(DTN.errorText(r)));
            if (r.body.state === "answered") return r.body.ok ? resolve(r.body.result) : reject(new Error(r.body.error || "The receiver refused."));
            if (r.body.state === "expired" || Date.now() - started > 30000) return reject(new Error("The receiver did not answer: is its agent running?"));
            setTimeout(check, 400);
          });
        }
        check();
      });
    }).then(function (listing) {
      current = listing.path || ".";
      shown.textContent = "/" + (listing.path || "");
      up.disabled = current === ".";
      (listing.entries || []).forEach(function (entry) {
        var isDir = entry.type === "dir", go = null;
        if (isDir) {
          go = DTN.el("button", {type: "button", className: "secondary", text: "Open", "aria-label": "Open folder " + entry.name + " at the receiver"});
          go.addEventListener("click", function () { list(entry.path); });
        }
        entries.appendChild(DTN.el("tr", {}, [
          DTN.el("td", {className: "path", text: entry.name + (isDir ? "/" : "")}),
          DTN.el("td", {text: entry.type === "file" ? DTN.size(entry.size) : isDir ? "folder" : ""}),
          DTN.el("td", {}, [go]),
        ]));
      });
      var count = (listing.entries || []).length;
      status.textContent = count ? count + (count === 1 ? " entry" : " entries") + " already there." : "Nothing here yet.";
    }, function (error) { status.textContent = error.message; });
  }

  DTN.togglePane(open, pane, document.getElementById("dest-close"), function () { list("."); }, prefix);
  up.addEventListener("click", function () { list(DTN.parentPath(current)); });
  document.getElementById("dest-here").addEventListener("click", function () {
    prefix.value = current === "." ? "" : current;
    prefix.dispatchEvent(new Event("input", {bubbles: true}));
    status.textContent = current === "." ? "Files will land at the top of your folder." : "Files will land in " + current + ".";
  });
  if (choice) choice.addEventListener("change", function () { if (!pane.hidden) list("."); });
}());
