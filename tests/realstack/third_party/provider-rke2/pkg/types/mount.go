package types

type MountPoint struct {
	Name   string
	Source string
	Target string
}
