// pdx portal: small behaviours shared by every page. The pages work without it; the
// Content-Security-Policy forbids inline scripts, so pages ask for these through
// data-* attributes only:
//
// - data-confirm="question" on a form (or on its submit button): asks before sending.
// - data-autosubmit on a <select> or a checkbox: sends its form when it changes
//   (filters); a page that uses it still shows a submit button for keyboards.
// - data-copy="text" on a button: copies the text (a hash, a receipt id) to the
//   clipboard and says so in the button's own words from data-copied.
"use strict";

(function () {
  function confirmed(element) {
    var question = element && element.getAttribute("data-confirm");
    return !question || window.confirm(question);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) {
      return;
    }
    var button = event.submitter;
    if (!confirmed(form) || (button && !confirmed(button))) {
      event.preventDefault();
    }
  });

  document.addEventListener("change", function (event) {
    var field = event.target;
    if (!(field instanceof HTMLElement) || !field.hasAttribute("data-autosubmit")) {
      return;
    }
    var form = field.form;
    if (form) {
      if (typeof form.requestSubmit === "function") {
        form.requestSubmit();
      } else {
        form.submit();
      }
    }
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    var button = target instanceof Element ? target.closest("[data-copy]") : null;
    if (!button || !navigator.clipboard) {
      return;
    }
    event.preventDefault();
    navigator.clipboard.writeText(button.getAttribute("data-copy") || "").then(function () {
      var done = button.getAttribute("data-copied");
      if (done) {
        button.textContent = done;
      }
    });
  });
})();
