// A small rich-text editor for textarea[data-rich-text]: the server sanitises whatever arrives.
(function () {
  var BUTTONS = [
    ["bold", "fa-bold", null], ["italic", "fa-italic", null], ["formatBlock", "fa-header", "h3"],
    ["insertUnorderedList", "fa-list-ul", null], ["insertOrderedList", "fa-list-ol", null],
    ["createLink", "fa-link", null], ["removeFormat", "fa-eraser", null]
  ];

  function button(editor, textarea, spec) {
    var element = document.createElement("button");
    element.type = "button";
    element.className = "btn btn-sm btn-outline-secondary mr-1";
    element.title = textarea.getAttribute("data-title-" + spec[0].toLowerCase()) || spec[0];
    element.innerHTML = '<span class="fa ' + spec[1] + '"></span>';
    element.addEventListener("click", function () {
      editor.focus();
      var value = spec[2];
      if (spec[0] === "createLink") {
        value = window.prompt(element.title, "https://");
        if (!value) { return; }
      }
      document.execCommand(spec[0], false, value);
    });
    return element;
  }

  document.querySelectorAll("textarea[data-rich-text]").forEach(function (textarea) {
    var toolbar = document.createElement("div");
    var editor = document.createElement("div");
    toolbar.className = "mb-1";
    editor.className = "form-control rich-text-editor";
    editor.contentEditable = "true";
    editor.innerHTML = textarea.value;
    BUTTONS.forEach(function (spec) { toolbar.appendChild(button(editor, textarea, spec)); });
    textarea.style.display = "none";
    textarea.parentNode.insertBefore(toolbar, textarea);
    textarea.parentNode.insertBefore(editor, textarea);
    textarea.form.addEventListener("submit", function () { textarea.value = editor.innerHTML; });
  });
})();
