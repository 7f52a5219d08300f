package demo

import (
	"fmt"
	"html"
	"regexp"
	"strings"
)

// The report is built once as a list of blocks and rendered twice, to
// Markdown and to HTML, so the two copies cannot disagree.

type block interface{ isBlock() }

type heading struct {
	level int
	text  string
}

// para is a paragraph; its text may use `code` and **bold**.
type para struct{ text string }

type bullets struct{ items []string }

type table struct {
	header []string
	// right marks right-aligned (numeric) columns.
	right []bool
	rows  [][]string
}

type figure struct{ src, alt string }

type codeBlock struct{ lines []string }

func (heading) isBlock()   {}
func (para) isBlock()      {}
func (bullets) isBlock()   {}
func (table) isBlock()     {}
func (figure) isBlock()    {}
func (codeBlock) isBlock() {}

// renderMarkdown writes blocks as GitHub-flavoured Markdown.
func renderMarkdown(blocks []block) string {
	var b strings.Builder
	for _, bl := range blocks {
		switch v := bl.(type) {
		case heading:
			fmt.Fprintf(&b, "%s %s\n\n", strings.Repeat("#", v.level), v.text)
		case para:
			fmt.Fprintf(&b, "%s\n\n", v.text)
		case bullets:
			for _, it := range v.items {
				fmt.Fprintf(&b, "- %s\n", it)
			}
			b.WriteString("\n")
		case table:
			cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
			b.WriteString("|")
			for _, h := range v.header {
				fmt.Fprintf(&b, " %s |", cell(h))
			}
			b.WriteString("\n|")
			for i := range v.header {
				if i < len(v.right) && v.right[i] {
					b.WriteString("---:|")
				} else {
					b.WriteString("---|")
				}
			}
			b.WriteString("\n")
			for _, row := range v.rows {
				b.WriteString("|")
				for _, c := range row {
					fmt.Fprintf(&b, " %s |", cell(c))
				}
				b.WriteString("\n")
			}
			b.WriteString("\n")
		case figure:
			fmt.Fprintf(&b, "![%s](%s)\n\n", v.alt, v.src)
		case codeBlock:
			b.WriteString("```sh\n")
			for _, l := range v.lines {
				b.WriteString(l)
				b.WriteString("\n")
			}
			b.WriteString("```\n\n")
		}
	}
	return b.String()
}

var (
	inlineCode = regexp.MustCompile("`([^`]+)`")
	inlineBold = regexp.MustCompile(`\*\*([^*]+)\*\*`)
	inlineLink = regexp.MustCompile(`\[([^\]]+)\]\(([^)\s]+)\)`)
)

// inlineHTML escapes text and turns the Markdown inline marks the report
// uses (`code`, **bold**, [text](link)) into HTML.
func inlineHTML(s string) string {
	s = html.EscapeString(s)
	s = inlineCode.ReplaceAllString(s, "<code>$1</code>")
	s = inlineBold.ReplaceAllString(s, "<strong>$1</strong>")
	s = inlineLink.ReplaceAllString(s, `<a href="$2">$1</a>`)
	return s
}

const htmlStyle = `body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1b1b1b;line-height:1.45}
table{border-collapse:collapse;margin:.5em 0 1.2em}th,td{border:1px solid #ccc;padding:.3em .6em}th{background:#f2f2f2}
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}code{background:#f3f3f3;padding:0 .2em;border-radius:3px}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;border-radius:4px}img{max-width:100%;border:1px solid #ddd}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}`

// renderHTML writes blocks as a standalone HTML page; figures refer to the
// PNG files next to it.
func renderHTML(title string, blocks []block) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>%s</title>\n<style>\n%s\n</style>\n</head>\n<body>\n", html.EscapeString(title), htmlStyle)
	for _, bl := range blocks {
		switch v := bl.(type) {
		case heading:
			fmt.Fprintf(&b, "<h%d>%s</h%d>\n", v.level, inlineHTML(v.text), v.level)
		case para:
			fmt.Fprintf(&b, "<p>%s</p>\n", inlineHTML(v.text))
		case bullets:
			b.WriteString("<ul>\n")
			for _, it := range v.items {
				fmt.Fprintf(&b, "<li>%s</li>\n", inlineHTML(it))
			}
			b.WriteString("</ul>\n")
		case table:
			class := func(i int) string {
				if i < len(v.right) && v.right[i] {
					return ` class="r"`
				}
				return ""
			}
			b.WriteString("<table>\n<tr>")
			for i, h := range v.header {
				fmt.Fprintf(&b, "<th%s>%s</th>", class(i), inlineHTML(h))
			}
			b.WriteString("</tr>\n")
			for _, row := range v.rows {
				b.WriteString("<tr>")
				for i, c := range row {
					fmt.Fprintf(&b, "<td%s>%s</td>", class(i), inlineHTML(c))
				}
				b.WriteString("</tr>\n")
			}
			b.WriteString("</table>\n")
		case figure:
			fmt.Fprintf(&b, "<p><img src=\"%s\" alt=\"%s\"></p>\n", html.EscapeString(v.src), html.EscapeString(v.alt))
		case codeBlock:
			fmt.Fprintf(&b, "<pre><code>%s</code></pre>\n", html.EscapeString(strings.Join(v.lines, "\n")))
		}
	}
	b.WriteString("</body>\n</html>\n")
	return b.String()
}
