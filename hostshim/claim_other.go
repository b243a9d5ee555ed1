//go:build !unix

package hostshim

import (
	"errors"
	"os"
)

var errNoFlock = errors.New("exclusive claims need flock(2), which this platform lacks")

func tryLock(*os.File) (bool, error) { return false, errNoFlock }

func unlock(*os.File) error { return errNoFlock }
