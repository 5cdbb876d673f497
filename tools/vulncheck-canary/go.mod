// Self-check of `make vulncheck`: a program that must be reported with GO-2022-1059 (CVE-2022-32149,
// golang.org/x/text/language.ParseAcceptLanguage, fixed in v0.3.8). Never shipped or run.
module slo-canary/vulncheck-canary

go 1.22

require golang.org/x/text v0.3.7
