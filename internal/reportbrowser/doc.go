// Package reportbrowser holds the browser test of report.html: a real offline run's page loaded in
// headless Chromium, its rendered table checked against results.json (make report-test).
package reportbrowser
