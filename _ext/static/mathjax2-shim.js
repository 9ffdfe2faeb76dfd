// The ipywidgets html-manager (1.0.x) typesets widget labels through the MathJax 2 API,
// `MathJax.Hub.Queue(["Typeset", MathJax.Hub, element])`. The book loads MathJax 3, which has
// no `Hub`: forward those calls to `MathJax.typesetPromise` instead of throwing.
(function () {
  "use strict";
  var hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        var mj = window.MathJax;
        if (Array.isArray(job) && job[0] === "Typeset" && mj && mj.typesetPromise) {
          var target = job[2] ? [job[2]] : undefined;
          var run = function () { return mj.typesetPromise(target); };
          (mj.startup && mj.startup.promise ? mj.startup.promise.then(run) : run()).catch(function () {});
        }
      }
    },
  };
  function install() {
    if (window.MathJax && !window.MathJax.Hub) {
      window.MathJax.Hub = hub;
    }
  }
  install(); // the configuration object, before MathJax 3 replaces it
  document.addEventListener("DOMContentLoaded", install); // MathJax 3 itself (a deferred script)
})();
