// "Another picture": reload every captcha image of the page (one captcha per session).
document.addEventListener("click", function (event) {
  if (!event.target.classList.contains("captcha-refresh")) { return; }
  document.querySelectorAll("img.captcha-image").forEach(function (image) {
    image.src = image.src.split("?")[0] + "?r=" + Date.now();
  });
});
