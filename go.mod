module github.com/xlane/xlane

go 1.26
