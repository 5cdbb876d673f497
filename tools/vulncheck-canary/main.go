// Command canary calls a function with a known vulnerability (GO-2022-1059) on purpose, so that
// tools/vulncheck.py can prove its scanner and database find it before trusting a clean result.
package main

import (
	"fmt"
	"os"

	"golang.org/x/text/language"
)

func main() {
	tags, weights, err := language.ParseAcceptLanguage(os.Getenv("ACCEPT_LANGUAGE"))
	fmt.Println(tags, weights, err)
}
