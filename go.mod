module github.com/devattest/devattest

go 1.26
