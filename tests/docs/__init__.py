"""The documented snippets: every fenced bash/python block of README.md and docs/*.md is run or says why not."""
