// Every form: a field marked with an error is unmarked as soon as the person changes it, so a fixed field no longer
// says it is wrong (the server checks everything again on submit). Plain DOM; nothing from the server is parsed.
(function () {
  "use strict";
  function clear(event) {
    var field = event.target.closest && event.target.closest(".field.has-error");
    if (!field) return;
    field.classList.remove("has-error");
    Array.prototype.forEach.call(field.querySelectorAll(".error"), function (node) { node.remove(); });
    Array.prototype.forEach.call(field.querySelectorAll("[aria-invalid]"), function (node) {
      node.removeAttribute("aria-invalid");
      // Django names the error's id in aria-describedby: drop it, it is gone.
      var described = (node.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (id) {
        return id && document.getElementById(id);
      });
      if (described.length) node.setAttribute("aria-describedby", described.join(" "));
      else node.removeAttribute("aria-describedby");
    });
    var banner = document.getElementById("form-errors");
    if (banner && !document.querySelector(".field.has-error")) banner.hidden = true;
  }
  document.addEventListener("input", clear);
  document.addEventListener("change", clear);
}());
