// Command k8s-control-plane is one binary holding the three parts of a Kubernetes control plane
// that the operator tests run on loopback: etcd, kube-apiserver and kube-controller-manager, all
// built from source at the release pinned in go.mod (see README.md).
//
// One multicall binary rather than three: the three share most of their packages (client-go,
// apimachinery, grpc, the etcd client, protobuf...), so they compile once and link once, which
// matters on a 2-core machine. The part to run is chosen by the name the binary is called by
// (bin/etcd, bin/kube-apiserver, bin/kube-controller-manager are symlinks to it) or by its first
// argument:
//
//	k8s-control-plane etcd [etcd flags]
//	k8s-control-plane kube-apiserver [kube-apiserver flags]
//	k8s-control-plane kube-controller-manager [kube-controller-manager flags]
//	k8s-control-plane version | --version      # the versions built in, one per line
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	_ "time/tzdata" // time zones for CronJobs, as upstream's main packages do

	etcdversion "go.etcd.io/etcd/api/v3/version"
	"go.etcd.io/etcd/server/v3/etcdmain"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // the JSON log format (--logging-format=json)
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream registers them
	_ "k8s.io/component-base/metrics/prometheus/version"  // the version metric
	k8sversion "k8s.io/component-base/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

const usage = `usage: k8s-control-plane etcd|kube-apiserver|kube-controller-manager [flags]
       k8s-control-plane version | --version
(or call it through a symlink named etcd, kube-apiserver or kube-controller-manager)
`

func main() {
	name, args := filepath.Base(os.Args[0]), os.Args[1:]
	if !isComponent(name) {
		if len(args) == 0 {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		name, args = args[0], args[1:]
	}
	os.Exit(run(name, args))
}

func isComponent(name string) bool {
	switch name {
	case "etcd", "kube-apiserver", "kube-controller-manager":
		return true
	}
	return false
}

// run starts the component NAME with ARGS (the arguments after the component's name) and
// returns the process's exit code.
func run(name string, args []string) int {
	switch name {
	case "etcd":
		// etcdmain.Main reads its arguments like os.Args: the program name first.
		etcdmain.Main(append([]string{"etcd"}, args...))
		return 0
	case "kube-apiserver":
		cmd := apiserver.NewAPIServerCommand()
		cmd.SetArgs(args)
		return cli.Run(cmd)
	case "kube-controller-manager":
		cmd := controllermanager.NewControllerManagerCommand()
		cmd.SetArgs(args)
		return cli.Run(cmd)
	case "version", "--version", "-version":
		// The Kubernetes version comes from -ldflags -X (tools/k8s/build.sh sets it from go.mod).
		fmt.Printf("kubernetes %s\n", k8sversion.Get().GitVersion)
		fmt.Printf("etcd %s\n", etcdversion.Version)
		fmt.Printf("go %s\n", runtime.Version())
		return 0
	case "help", "--help", "-h":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "k8s-control-plane: unknown component %q\n%s", name, usage)
	return 2
}
