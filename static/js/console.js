// Confirmation for per-row POST action forms (the message travels in data-confirm, never as code).
document.addEventListener("submit", function (event) {
  var form = event.target;
  var message = form.getAttribute && form.getAttribute("data-confirm");
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});

// A link to "#" is a button (dropdown toggles, filter names, batch actions): it never navigates. Listened to in
// the capture phase, before Bootstrap's and Flask-Admin's handlers (which may stop the event's propagation).
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest('a[href="#"]');
  if (!link) {
    return;
  }
  event.preventDefault();
  var action = link.getAttribute("data-model-action");
  if (action && window.modelActions) {
    window.modelActions.execute(action);  // Flask-Admin's batch action: asks, then posts the hidden form
  }
}, true);

// Flask-Admin's date pickers (bootstrap-daterangepicker 1.3) speak English: made Chinese when first used — the
// labels, weekdays, months, and the range separator " 至 " (admin_views/search.py accepts it with " to ").
var PICKER_LOCALE = {
  applyLabel: "确定", cancelLabel: "取消", fromLabel: "开始", toLabel: "结束",
  daysOfWeek: ["日", "一", "二", "三", "四", "五", "六"],
  monthNames: ["1月", "2月", "3月", "4月", "5月", "6月", "7月", "8月", "9月", "10月", "11月", "12月"]
};
function chinesePicker(event) {
  var input = event.target;
  if (!window.jQuery || input.tagName !== "INPUT") {
    return;
  }
  var picker = window.jQuery(input).data("daterangepicker");  // the filters' inputs lose their data-role
  if (!picker || picker.chinese) {
    return;
  }
  picker.chinese = true;
  window.jQuery.extend(picker.locale, PICKER_LOCALE);
  if (!picker.singleDatePicker) {
    picker.separator = " 至 ";
  }
  picker.container.find(".applyBtn").text(PICKER_LOCALE.applyLabel);
  picker.container.find(".cancelBtn").text(PICKER_LOCALE.cancelLabel);
  picker.container.find(".daterangepicker_start_input label").text(PICKER_LOCALE.fromLabel);
  picker.container.find(".daterangepicker_end_input label").text(PICKER_LOCALE.toLabel);
  picker.updateCalendars();
}
// before the picker's own handlers (capture phase); a filter's input may already hold the focus when clicked
document.addEventListener("mousedown", chinesePicker, true);
document.addEventListener("focusin", chinesePicker, true);
