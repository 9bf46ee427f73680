// KaTeX for the math of the docstrings and pages (pymdownx.arithmatex, generic mode, wraps it
// in \( \) and \[ \]); re-run on each page that Material's instant navigation loads.
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
    throwOnError: false,
  });
});
