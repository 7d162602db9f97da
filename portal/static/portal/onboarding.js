// The page after registering a container: copy buttons for the .env and commands, and a live
// "waiting… connected" line that polls the container's API until its first heartbeat arrives.
(function () {
  "use strict";
  function copy(button) {
    var block = document.getElementById(button.getAttribute("data-copy"));
    var status = document.getElementById(block.id + "-copied");
    var text = block.textContent;
    function done(ok) { status.textContent = ok ? "Copied." : "Select the text and copy it by hand."; }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, function () { fallback(); });
    } else fallback();
    // Plain http (a portal on a LAN): the Clipboard API is absent, so select the block for the person.
    function fallback() {
      var range = document.createRange();
      range.selectNodeContents(block);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      done(ok);
    }
  }
  Array.prototype.forEach.call(document.querySelectorAll("button.copy"), function (button) {
    button.addEventListener("click", function () { copy(button); });
  });

  var line = document.getElementById("connection");
  if (!line || !window.DTN) return;
  var text = document.getElementById("connection-text");
  DTN.poll(function () {
    return DTN.api("GET", line.getAttribute("data-url")).then(function (answer) {
      if (!answer.ok || !answer.body || !answer.body.online) return true;
      line.className = "connection connected";
      text.textContent = "Connected: " + answer.body.name + " is online" +
        (answer.body.agent_version ? " (agent " + answer.body.agent_version + ")" : "") + ". ";
      text.appendChild(DTN.el("a", {href: line.getAttribute("data-next-url"), text: line.getAttribute("data-next-text")}));
      return false;
    });
  }, 2000, 10000);
}());
