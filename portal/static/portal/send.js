// The send page: a folder picker over the sender's send folder (a side-channel
// task, answered in seconds even while the sender runs a transfer), "Use" buttons
// for granted receivers, and an on-demand network check from the chosen sender
// to the chosen receiver. Typed source paths keep working: the picker only adds
// and removes lines of the sources field, and the server validates everything.
(function () {
  "use strict";
  var form = document.getElementById("send-form");
  if (!form || !window.DTN) return;
  var DTN = window.DTN;
  var sender = document.getElementById("id_sender");
  var receiver = document.getElementById("id_receiver");
  var sources = document.getElementById("id_sources");
  var choice = document.getElementById("id_receiver_choice");
  function receiverId() { return (choice && choice.value) || receiver.value.trim(); }
  // "No destination" is said on the ID field; choosing by name fixes it too, so let fields.js clear that mark.
  if (choice) choice.addEventListener("change", function () {
    if (choice.value) receiver.dispatchEvent(new Event("input", {bubbles: true}));
  });

  function url(template, id) { return template.replace(form.dataset.placeholder, id); }

  // Ask the chosen sender something through the side channel; resolves with the task's result.
  function ask(kind, params, onWait) {
    return DTN.api("POST", url(form.dataset.tasksUrl, sender.value), {kind: kind, params: params}).then(function (created) {
      if (!created.ok) throw new Error(DTN.errorText(created));
      var started = Date.now();
      return new Promise(function (resolve, reject) {
        function check() {
          DTN.api("GET", url(form.dataset.taskUrl, created.body.task_id)).then(function (r) {
            if (!r.ok) return reject(new Error(DTN.errorText(r)));
            var task = r.body;
            if (task.state === "answered") return task.ok ? resolve(task.result) : reject(new Error(task.error || "The sender refused."));
            if (task.state === "expired") return reject(new Error("The sender did not answer in time: is its agent running?"));
            if (Date.now() - started > 30000) return reject(new Error("No answer from the sender after 30 s: is its agent running?"));
            if (onWait && Date.now() - started > 3000) onWait();
            setTimeout(check, 400);
          });
        }
        check();
      });
    });
  }

  // --- the folder picker --------------------------------------------------------------------------

  var picker = document.getElementById("picker");
  var browse = document.getElementById("browse");
  var entries = document.getElementById("picker-entries");
  var status = document.getElementById("picker-status");
  var title = document.getElementById("picker-title");
  var shownPath = document.getElementById("picker-path");
  var up = document.getElementById("picker-up");
  var current = ".";

  // What each picked path is, as far as a listing said (a path typed by hand is counted as one item).
  var known = {};
  var total = document.getElementById("picker-total");
  var pickAll = document.getElementById("pick-all");
  function showTotal() {
    var files = 0, bytes = 0, folders = 0, other = 0;
    lines().forEach(function (path) {
      var entry = known[path];
      if (entry && entry.type === "file") { files++; bytes += entry.size || 0; }
      else if (entry && entry.type === "dir") folders++;
      else other++;
    });
    var parts = [];
    if (files) parts.push(files + (files === 1 ? " file, " : " files, ") + DTN.size(bytes));
    if (folders) parts.push(folders + (folders === 1 ? " folder" : " folders") + " (sized when sent)");
    if (other) parts.push(other + (other === 1 ? " path" : " paths") + " typed by hand");
    if (total) total.textContent = parts.length ? "To send: " + parts.join("; ") + "." : "";
  }
  function syncPickAll() {
    if (!pickAll) return;
    var boxes = entries.querySelectorAll("input[type=checkbox]");
    var ticked = entries.querySelectorAll("input[type=checkbox]:checked");
    pickAll.checked = boxes.length > 0 && ticked.length === boxes.length;
    pickAll.indeterminate = ticked.length > 0 && ticked.length < boxes.length;
  }
  function lines() { return sources.value.split("\n").map(function (l) { return l.trim(); }).filter(Boolean); }
  function setPicked(path, picked) {
    var kept = lines().filter(function (l) { return l !== path; });
    if (picked) kept.push(path);
    sources.value = kept.join("\n");
    sources.dispatchEvent(new Event("input", {bubbles: true}));
  }
  sources.addEventListener("input", showTotal);

  function entryRow(entry, index) {
    var isDir = entry.type === "dir";
    var id = "pick-" + index;
    var box = DTN.el("input", {type: "checkbox", id: id, value: entry.path});
    box.checked = lines().indexOf(entry.path) !== -1;
    known[entry.path] = entry;
    box.addEventListener("change", function () { setPicked(entry.path, box.checked); syncPickAll(); });
    var label = DTN.el("label", {"for": id, text: entry.name + (isDir ? "/" : entry.type === "link" ? " (link)" : "")});
    var open = null;
    if (isDir) {
      open = DTN.el("button", {type: "button", className: "secondary", text: "Open", "aria-label": "Open folder " + entry.name});
      open.addEventListener("click", function () { load(entry.path); });
    }
    return DTN.el("tr", {}, [
      DTN.el("td", {}, [box, " ", label]),
      DTN.el("td", {text: entry.type === "file" ? DTN.size(entry.size) : isDir ? "folder" : ""}),
      DTN.el("td", {}, [open]),
    ]);
  }

  function load(path) {
    if (!sender.value) { status.textContent = "Choose a sender first."; return; }
    status.textContent = "Asking the sender for " + (path === "." ? "its send folder" : path) + "…";
    entries.textContent = "";
    return ask("list_send_folder", {path: path}, function () {
      status.textContent = "Still waiting for the sender…";
    }).then(function (listing) {
      current = listing.path || ".";
      shownPath.textContent = "/" + (listing.path || "");
      up.disabled = current === "." || current === "";
      (listing.entries || []).forEach(function (entry, i) { entries.appendChild(entryRow(entry, i)); });
      syncPickAll();
      var count = (listing.entries || []).length;
      status.textContent = count ? count + (count === 1 ? " entry" : " entries") + (listing.truncated ? " (the first ones only)" : "") +
        ". Tick what to send." : "This folder is empty.";
      title.focus();
    }, function (error) {
      status.textContent = error.message;
    });
  }

  if (pickAll) {
    pickAll.addEventListener("change", function () {
      Array.prototype.forEach.call(entries.querySelectorAll("input[type=checkbox]"), function (box) {
        if (box.checked !== pickAll.checked) { box.checked = pickAll.checked; setPicked(box.value, box.checked); }
      });
      syncPickAll();
    });
  }

  if (browse) {
    DTN.togglePane(browse, picker, document.getElementById("picker-close"), function () { load("."); }, sources);
    up.addEventListener("click", function () { load(DTN.parentPath(current)); });
    sender.addEventListener("change", function () {
      if (!picker.hidden) load(".");
    });
  }

  // --- receivers granted to me --------------------------------------------------------------------

  document.querySelectorAll(".use-receiver").forEach(function (button) {
    button.addEventListener("click", function () {
      receiver.value = button.dataset.receiver;
      if (choice) choice.value = button.dataset.receiver;
      receiver.focus();
    });
  });

  // --- the on-demand network check ----------------------------------------------------------------

  var checkButton = document.getElementById("check-network");
  if (checkButton && form.dataset.networkChecksUrl) {
    var checkStatus = document.getElementById("netcheck-status");
    var card = document.getElementById("netcheck-card");
    var verdict = document.getElementById("send-verdict");
    var checkedPair = null;
    // The verdict beside the Send button too: the last thing looked at before sending.
    function showVerdict(check) {
      if (!verdict) return;
      verdict.textContent = "";
      if (!check || check.state !== "done" || !check.verdict) return;
      var words = {go: "go", warn: "go, with warnings", no_go: "no-go"}[check.verdict] || check.verdict;
      verdict.appendChild(DTN.el("span", {className: "badge verdict-" + check.verdict, text: "Network check: " + words}));
    }
    // Asked once per choice of receiver (and sender), never merely because the page was opened.
    if (choice) choice.addEventListener("change", function () {
      var pair = sender.value + " " + receiverId();
      if (sender.value && choice.value && pair !== checkedPair && !checkButton.disabled) { checkedPair = pair; runCheck(); }
    });
    checkButton.addEventListener("click", runCheck);
    function runCheck() {
      if (!sender.value || !receiverId()) {
        checkStatus.textContent = "Choose a sender and a receiver first.";
        return;
      }
      checkButton.disabled = true;
      showVerdict(null);
      checkStatus.textContent = "Checking the network from the sender to the receiver…";
      card.hidden = true;
      DTN.api("POST", form.dataset.networkChecksUrl, {sender: sender.value, receiver: receiverId()}).then(function (created) {
        if (!created.ok) throw new Error(DTN.errorText(created));
        var checkUrl = form.dataset.networkChecksUrl + "/" + created.body.check_id;
        var started = Date.now();
        return new Promise(function (resolve, reject) {
          function again() {
            DTN.api("GET", checkUrl).then(function (r) {
              if (!r.ok) return reject(new Error(DTN.errorText(r)));
              if (r.body.state !== "pending") return resolve(r.body);
              if (Date.now() - started > 90000) return reject(new Error("No result after 90 s."));
              setTimeout(again, 1000);
            });
          }
          again();
        });
      }).then(function (check) {
        card.hidden = !DTN.renderNetworkCheck(card, check);
        showVerdict(check);
        checkStatus.textContent = check.state === "done" ? "Network check done: " + (check.verdict || "") + "." : "Network check " + check.state + ".";
      }, function (error) {
        checkStatus.textContent = "Network check failed: " + error.message;
      }).then(function () { checkButton.disabled = false; });
    }
  }
})();
