// Figures wider than the text column are shown smaller than their natural size. Such a figure
// becomes a button: a click (or Enter or Space) shows it at full size over the page, where it
// scrolls if it is wider than the window; a click, Escape or the close button goes back.
(function () {
  "use strict";
  var FIGURES = "div.cell_output img";  // the notebooks' figures (replays have players of their own)
  var HINT = " (shown reduced: press to see it at full size)";

  function shrunk(img) {
    return img.naturalWidth > 0 && img.getBoundingClientRect().width < img.naturalWidth - 1;
  }

  function mark(img) {
    if (img.closest(".flowlab-replay, .flowlab-explorer")) return;
    var on = shrunk(img);
    img.classList.toggle("flowlab-zoomable", on);
    if (on) {
      img.setAttribute("tabindex", "0");
      img.setAttribute("role", "button");
      img.setAttribute("aria-label", (img.getAttribute("alt") || "figure") + HINT);
    } else {
      img.removeAttribute("tabindex");
      img.removeAttribute("role");
      img.removeAttribute("aria-label");
    }
  }

  function open(img) {
    var layer = document.createElement("div");
    layer.className = "flowlab-zoom";
    layer.setAttribute("role", "dialog");
    layer.setAttribute("aria-modal", "true");
    layer.setAttribute("aria-label", "figure at full size");
    var big = document.createElement("img");
    big.src = img.currentSrc || img.src;
    big.alt = img.getAttribute("alt") || "";
    big.width = img.naturalWidth;
    var close = document.createElement("button");
    close.type = "button";
    close.textContent = "\u2715 Close";
    layer.appendChild(close);
    layer.appendChild(big);
    function shut() {
      document.removeEventListener("keydown", onKey, true);
      layer.remove();
      document.body.style.overflow = "";
      img.focus();
    }
    function onKey(event) {
      if (event.key === "Escape") { event.preventDefault(); shut(); }
    }
    layer.addEventListener("click", shut);
    document.addEventListener("keydown", onKey, true);
    document.body.appendChild(layer);
    document.body.style.overflow = "hidden";
    close.focus();
  }

  function setup() {
    var images = document.querySelectorAll(FIGURES);
    images.forEach(function (img) {
      if (img.complete) mark(img); else img.addEventListener("load", function () { mark(img); });
      img.addEventListener("click", function () {
        mark(img);
        if (img.classList.contains("flowlab-zoomable")) open(img);
      });
      img.addEventListener("keydown", function (event) {
        if (img.classList.contains("flowlab-zoomable") && (event.key === "Enter" || event.key === " ")) {
          event.preventDefault();
          open(img);
        }
      });
    });
    var pending = null;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(function () { images.forEach(mark); }, 150);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup); else setup();
})();
