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
