// The IP report forms (templates/admin/ip/form.html): the fields that apply to the chosen 分配方式 / 来源 only
// (data-switch on the form, data-shown-for and data-required-for on the fields), and the city and county menus
// filled from the chosen province and city (data-division-child, data-divisions-url). The server checks it all.
(function () {
  "use strict";

  function applies(element, attribute, value) {
    return value !== "" && element.getAttribute(attribute).split(" ").indexOf(value) >= 0;
  }

  function applySwitch(form) {
    var menu = form.elements[form.getAttribute("data-switch")];
    if (!menu) {
      return;
    }
    var value = menu.value;
    form.querySelectorAll("[data-shown-for]").forEach(function (group) {
      group.hidden = !applies(group, "data-shown-for", value);
    });
    form.querySelectorAll("[data-required-for]").forEach(function (mark) {
      mark.hidden = !applies(mark, "data-required-for", value);
    });
    form.querySelectorAll("fieldset").forEach(function (section) {
      var groups = section.querySelectorAll(".form-group");
      section.hidden = groups.length > 0 && Array.prototype.every.call(groups, function (group) {
        return group.hidden;
      });
    });
  }

  function fillMenu(menu, pairs) {
    var first = menu.options.length ? menu.options[0].cloneNode(true) : null;  // "— 请选择 —"
    menu.length = 0;
    if (first) {
      first.selected = true;
      menu.appendChild(first);
    }
    pairs.forEach(function (pair) {
      var option = document.createElement("option");
      option.value = pair[0];
      option.textContent = pair[1];
      menu.appendChild(option);
    });
    menu.dispatchEvent(new Event("change", {bubbles: true}));
  }

  function followDivision(menu) {
    var child = menu.form.elements[menu.getAttribute("data-division-child")];
    if (!child) {
      return;
    }
    if (!menu.value) {
      fillMenu(child, []);
      return;
    }
    var url = menu.getAttribute("data-divisions-url") + "?parent=" + encodeURIComponent(menu.value);
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : {divisions: []}; })
      .then(function (data) { fillMenu(child, data.divisions || []); });
  }

  document.querySelectorAll("form[data-switch]").forEach(function (form) {
    applySwitch(form);
    form.elements[form.getAttribute("data-switch")].addEventListener("change", function () {
      applySwitch(form);
    });
  });
  document.querySelectorAll("select[data-division-child]").forEach(function (menu) {
    menu.addEventListener("change", function () {
      followDivision(menu);
    });
  });
}());
