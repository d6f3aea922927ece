// Filter a list as staff type: <input data-filter="ID"> hides the items of #ID whose
// data-search does not contain what was typed. Without script every item stays shown.
document.addEventListener("input", function (event) {
  var list = event.target.dataset && document.getElementById(event.target.dataset.filter);
  if (!list) { return; }
  var wanted = event.target.value.trim().toLowerCase();
  list.querySelectorAll("[data-search]").forEach(function (item) {
    item.hidden = wanted !== "" && item.dataset.search.toLowerCase().indexOf(wanted) < 0;
  });
});

// <button data-print> prints the page (the stylesheet leaves the menus off paper).
document.addEventListener("click", function (event) {
  if (event.target.closest && event.target.closest("[data-print]")) { window.print(); }
});
