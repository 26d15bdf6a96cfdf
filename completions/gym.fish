# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_gym_global_optspecs
    string join \n q/quiet threads= blas= h/help V/version
end

function __fish_gym_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_gym_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_gym_using_subcommand
    set -l cmd (__fish_gym_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c gym -n "__fish_gym_needs_command" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_needs_command" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_needs_command" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_needs_command" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_needs_command" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_needs_command" -f -a "keygen" -d 'Create a worker key (Ed25519, optionally with ML-DSA-87)'
complete -c gym -n "__fish_gym_needs_command" -f -a "key" -d 'Work with key files'
complete -c gym -n "__fish_gym_needs_command" -f -a "delta" -d 'Pack, unpack, inspect, verify and compare DELTA files'
complete -c gym -n "__fish_gym_needs_command" -f -a "reward" -d 'Estimate epoch rewards; sign and verify reward claims'
complete -c gym -n "__fish_gym_needs_command" -f -a "ring" -d 'Average deltas with other workers: authenticated, encrypted, verifiable ring all-reduce'
complete -c gym -n "__fish_gym_needs_command" -f -a "cid" -d 'Print the CIDs `ipfs add` would give files or directories, computed offline'
complete -c gym -n "__fish_gym_needs_command" -f -a "publish" -d 'Publish a file or folder: to a local CID-named folder, an IPFS node, the Hugging Face Hub'
complete -c gym -n "__fish_gym_needs_command" -f -a "model" -d 'Inspect model folders (architecture, parameters, memory, LoRA size)'
complete -c gym -n "__fish_gym_needs_command" -f -a "train" -d 'Fine-tune with GSPO (LoRA over an NF4 base); write metrics, checkpoints, signed deltas'
complete -c gym -n "__fish_gym_needs_command" -f -a "eval" -d 'Evaluate a model or adapter: mean reward, accuracy, NLL of reference answers'
complete -c gym -n "__fish_gym_needs_command" -f -a "generate" -d 'Complete prompts with a model (default: the bundled tiny Qwen3)'
complete -c gym -n "__fish_gym_needs_command" -f -a "plot" -d 'Draw training curves (metrics JSON Lines) into an SVG, one panel per metric'
complete -c gym -n "__fish_gym_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c gym -n "__fish_gym_needs_command" -f -a "download" -d 'Download a model or dataset by hub id into the Hugging Face cache; print its folder'
complete -c gym -n "__fish_gym_needs_command" -f -a "validate" -d 'Check a round\'s deltas (signature, sequence, base, norm, held-out loss); signed verdicts'
complete -c gym -n "__fish_gym_needs_command" -f -a "orchestrate" -d 'Run a job\'s orchestrator: rounds, rings, signed decision log, checkpoint publishing'
complete -c gym -n "__fish_gym_needs_command" -f -a "work" -d 'Train for an orchestrator\'s job: register, train, report, join each round\'s ring'
complete -c gym -n "__fish_gym_needs_command" -f -a "job" -d 'Inspect or stop a running job'
complete -c gym -n "__fish_gym_needs_command" -f -a "demo" -d 'The whole protocol on one machine: an orchestrator and 3 workers, 2 epochs, on loopback'
complete -c gym -n "__fish_gym_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gym -n "__fish_gym_using_subcommand keygen" -s o -l output -d 'Where to write the private key (PKCS#8 PEM, mode 0600)' -r -F
complete -c gym -n "__fish_gym_using_subcommand keygen" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand keygen" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand keygen" -l pq -d 'Also create an ML-DSA-87 key pair for hybrid (post-quantum) signatures'
complete -c gym -n "__fish_gym_using_subcommand keygen" -l force -d 'Replace an existing key file'
complete -c gym -n "__fish_gym_using_subcommand keygen" -l json -d 'Print the public identity as JSON'
complete -c gym -n "__fish_gym_using_subcommand keygen" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand keygen" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand keygen" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand key; and not __fish_seen_subcommand_from show help" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand key; and not __fish_seen_subcommand_from show help" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand key; and not __fish_seen_subcommand_from show help" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand key; and not __fish_seen_subcommand_from show help" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand key; and not __fish_seen_subcommand_from show help" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand key; and not __fish_seen_subcommand_from show help" -f -a "show" -d 'Show the public identity of a key file: worker id and public keys'
complete -c gym -n "__fish_gym_using_subcommand key; and not __fish_seen_subcommand_from show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gym -n "__fish_gym_using_subcommand key; and __fish_seen_subcommand_from show" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand key; and __fish_seen_subcommand_from show" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand key; and __fish_seen_subcommand_from show" -l json -d 'Print JSON (format `gym-key/1`): worker_id, ed25519, ed25519_pem, ml_dsa_87'
complete -c gym -n "__fish_gym_using_subcommand key; and __fish_seen_subcommand_from show" -l pem -d 'Print only the Ed25519 public key as SPKI PEM (as `openssl pkey -pubout` does)'
complete -c gym -n "__fish_gym_using_subcommand key; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand key; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand key; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show the public identity of a key file: worker id and public keys'
complete -c gym -n "__fish_gym_using_subcommand key; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gym -n "__fish_gym_using_subcommand delta; and not __fish_seen_subcommand_from pack unpack inspect verify diff help" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and not __fish_seen_subcommand_from pack unpack inspect verify diff help" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and not __fish_seen_subcommand_from pack unpack inspect verify diff help" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand delta; and not __fish_seen_subcommand_from pack unpack inspect verify diff help" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand delta; and not __fish_seen_subcommand_from pack unpack inspect verify diff help" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand delta; and not __fish_seen_subcommand_from pack unpack inspect verify diff help" -f -a "pack" -d 'Pack a .safetensors file or a PEFT adapter folder into a DELTA file'
complete -c gym -n "__fish_gym_using_subcommand delta; and not __fish_seen_subcommand_from pack unpack inspect verify diff help" -f -a "unpack" -d 'Unpack a DELTA file to .safetensors (or a PEFT adapter folder), checking it fully'
complete -c gym -n "__fish_gym_using_subcommand delta; and not __fish_seen_subcommand_from pack unpack inspect verify diff help" -f -a "inspect" -d 'Show a DELTA file\'s header, metadata, tensors and signer (reads headers only)'
complete -c gym -n "__fish_gym_using_subcommand delta; and not __fish_seen_subcommand_from pack unpack inspect verify diff help" -f -a "verify" -d 'Verify DELTA files: structure, checksum, signatures, trust and policy'
complete -c gym -n "__fish_gym_using_subcommand delta; and not __fish_seen_subcommand_from pack unpack inspect verify diff help" -f -a "diff" -d 'Compare two DELTA files tensor by tensor (L2 distance, max abs difference, cosine)'
complete -c gym -n "__fish_gym_using_subcommand delta; and not __fish_seen_subcommand_from pack unpack inspect verify diff help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -s o -l output -d 'The DELTA file to write' -r -F
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l sign -d 'Sign with this key file (hybrid Ed25519 + ML-DSA-87 when the key has both)' -r -F
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l compression -r -f -a "none\t''
lz4\t''"
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l chunk-size -d 'Raw bytes per chunk: a power of two from 256 bytes to 64MiB' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l epoch -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l step -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l seq -d 'Sequence number; must increase with every delta a worker publishes' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l loss -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l worker-id -d 'Worker label (default: the signer\'s worker id, or "anonymous" when unsigned)' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l base-hash -d 'SHA3-256 of the base model state the delta was trained against' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l parent-hash -d 'Body digest of the delta this one applies on top of' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l timestamp -d 'RFC 3339 UTC time (default: now, or SOURCE_DATE_EPOCH)' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l tokens -d 'Compute record: tokens processed' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l flops -d 'Compute record: floating-point operations' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l device -d 'Compute record: device description' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l wall-seconds -d 'Compute record: wall-clock seconds' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l config -d 'A JSON object summarising the training configuration, stored as `config`' -r -F
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l force -d 'Replace OUT if it exists'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -l json -d 'Print a JSON summary (format `gym-delta-pack/1`)'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from pack" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from unpack" -s o -l output -d 'Output .safetensors file, or folder for a PEFT adapter' -r -F
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from unpack" -l format -r -f -a "auto\t'A PEFT folder when the delta carries an adapter config, else a .safetensors file'
safetensors\t''
peft\t''"
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from unpack" -l trusted-keys -d 'Require a signer from this file (see `gym delta verify --help`)' -r -F
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from unpack" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from unpack" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from unpack" -l force -d 'Replace OUT if it exists'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from unpack" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from unpack" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from unpack" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from inspect" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from inspect" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from inspect" -l json -d 'Print JSON (format `gym-delta-inspect/1`)'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from inspect" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from inspect" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from inspect" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from verify" -l trusted-keys -d 'Require every delta to be signed by a key in this file' -r -F
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from verify" -l min-seq -d 'Reject deltas whose sequence number is below N' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from verify" -l base-hash -d 'Reject deltas whose base model hash differs' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from verify" -l vectors -d 'Check every test vector of a manifest against its expected verdict' -r -F
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from verify" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from verify" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from verify" -l require-signature -d 'Require a signature (from anyone) even without --trusted-keys'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from verify" -l json -d 'Print JSON (format `gym-delta-verify/1`)'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from verify" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from verify" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from diff" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from diff" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from diff" -l json -d 'Print JSON (format `gym-delta-diff/1`)'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from diff" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from diff" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from diff" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from help" -f -a "pack" -d 'Pack a .safetensors file or a PEFT adapter folder into a DELTA file'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from help" -f -a "unpack" -d 'Unpack a DELTA file to .safetensors (or a PEFT adapter folder), checking it fully'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from help" -f -a "inspect" -d 'Show a DELTA file\'s header, metadata, tensors and signer (reads headers only)'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Verify DELTA files: structure, checksum, signatures, trust and policy'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from help" -f -a "diff" -d 'Compare two DELTA files tensor by tensor (L2 distance, max abs difference, cosine)'
complete -c gym -n "__fish_gym_using_subcommand delta; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gym -n "__fish_gym_using_subcommand reward; and not __fish_seen_subcommand_from estimate claim verify-claim economics help" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand reward; and not __fish_seen_subcommand_from estimate claim verify-claim economics help" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand reward; and not __fish_seen_subcommand_from estimate claim verify-claim economics help" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand reward; and not __fish_seen_subcommand_from estimate claim verify-claim economics help" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand reward; and not __fish_seen_subcommand_from estimate claim verify-claim economics help" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand reward; and not __fish_seen_subcommand_from estimate claim verify-claim economics help" -f -a "estimate" -d 'Estimate an epoch\'s rewards from an epoch folder or a contributions file'
complete -c gym -n "__fish_gym_using_subcommand reward; and not __fish_seen_subcommand_from estimate claim verify-claim economics help" -f -a "claim" -d 'Sign a reward claim binding your signed delta (digest, CID) to its compute record'
complete -c gym -n "__fish_gym_using_subcommand reward; and not __fish_seen_subcommand_from estimate claim verify-claim economics help" -f -a "verify-claim" -d 'Verify a reward claim\'s signature, and optionally that it matches a delta'
complete -c gym -n "__fish_gym_using_subcommand reward; and not __fish_seen_subcommand_from estimate claim verify-claim economics help" -f -a "economics" -d 'Print the economics in effect as TOML (the defaults, or FILE with defaults filled in)'
complete -c gym -n "__fish_gym_using_subcommand reward; and not __fish_seen_subcommand_from estimate claim verify-claim economics help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from estimate" -l economics -d 'Economics file (TOML). Missing fields take the defaults shown by `gym reward economics`' -r -F
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from estimate" -l epoch -d 'Epoch to estimate (0-based; default: the input\'s "epoch" field, else 0 for a contributions file)' -r
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from estimate" -l model-params -d 'Model size in parameters. Claimed FLOPs are capped at 6 x params x tokens. Required for an epoch folder; applies to contributions records that give "tokens"' -r
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from estimate" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from estimate" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from estimate" -l json -d 'Print JSON (format `gym-reward-estimate/1`)'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from estimate" -l csv -d 'Print CSV, one line per node'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from estimate" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from estimate" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from estimate" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from claim" -l delta -d 'Your signed delta' -r -F
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from claim" -l cid -d 'The IPFS CID the delta was published under (checked for syntax, not recomputed)' -r
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from claim" -l key -d 'The key that signed the delta' -r -F
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from claim" -s o -l output -d 'Where to write the claim (JSON, format `gym-reward-claim/1`)' -r -F
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from claim" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from claim" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from claim" -l force -d 'Replace the output if it exists'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from claim" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from claim" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from claim" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from verify-claim" -l delta -d 'Also check that this delta is the one claimed: digest, file hash, signer, compute record' -r -F
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from verify-claim" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from verify-claim" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from verify-claim" -l json -d 'Print JSON (format `gym-reward-claim-verify/1`)'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from verify-claim" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from verify-claim" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from verify-claim" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from economics" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from economics" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from economics" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from economics" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from economics" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from help" -f -a "estimate" -d 'Estimate an epoch\'s rewards from an epoch folder or a contributions file'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from help" -f -a "claim" -d 'Sign a reward claim binding your signed delta (digest, CID) to its compute record'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from help" -f -a "verify-claim" -d 'Verify a reward claim\'s signature, and optionally that it matches a delta'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from help" -f -a "economics" -d 'Print the economics in effect as TOML (the defaults, or FILE with defaults filled in)'
complete -c gym -n "__fish_gym_using_subcommand reward; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gym -n "__fish_gym_using_subcommand ring; and not __fish_seen_subcommand_from plan join audit help" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and not __fish_seen_subcommand_from plan join audit help" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and not __fish_seen_subcommand_from plan join audit help" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand ring; and not __fish_seen_subcommand_from plan join audit help" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand ring; and not __fish_seen_subcommand_from plan join audit help" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand ring; and not __fish_seen_subcommand_from plan join audit help" -f -a "plan" -d 'Write a ring file from lines of `ADDRESS PUBLIC-KEY` (or `ADDRESS {gym key show --json}`)'
complete -c gym -n "__fish_gym_using_subcommand ring; and not __fish_seen_subcommand_from plan join audit help" -f -a "join" -d 'Join a ring, run one all-reduce (weighted mean of the members\' deltas), write the result'
complete -c gym -n "__fish_gym_using_subcommand ring; and not __fish_seen_subcommand_from plan join audit help" -f -a "audit" -d 'Audit a result of `gym ring join` offline: receipts, transcript, members\' inputs, mean'
complete -c gym -n "__fish_gym_using_subcommand ring; and not __fish_seen_subcommand_from plan join audit help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from plan" -s o -l output -d 'Where to write the ring file (default: standard output)' -r -F
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from plan" -l round -d 'Round number: increase it for every all-reduce, so messages of one cannot be replayed into another' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from plan" -l chunk-elements -d 'Elements per data message (pipelining granularity). Default: 65536, or 262144 in a hybrid ring (every member with an ML-DSA-87 key), whose signatures cost ~20× more' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from plan" -l max-weight -d 'Largest weight a member may commit (1 to 2^32, default 2^32). A member committing more is excluded by the others. Together with --max-exponent it fixes the precision every honest member is guaranteed (printed)' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from plan" -l max-exponent -d 'Largest input exponent a member may commit: every element of its delta must be below 2^E in magnitude (default 8). A member committing more is excluded by the others' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from plan" -l scale-bits -d 'Fix the fixed-point scale at 2^F instead of the one the members\' commits give: every ring of a hierarchical round uses the round\'s F, 58 − max_exponent − bitlen(N · max_weight) over its N members (docs/ring-protocol.md "Hierarchical rounds")' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from plan" -l quantize -d 'Quantized averaging: every member rounds its delta, per block of 64 values, to BITS-bit signed multiples of a power of two (2 to 16 bits) before the exact sum. Smaller data messages; each element\'s error is at most half a step, 2^(e−BITS) for a block whose values are below 2^e (docs/ring-protocol.md, "Quantized averaging"). Default: lossless' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from plan" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from plan" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from plan" -l sum-output -d 'Make every member write the group\'s exact integer sum and weight total (a sum file, the input of a leader ring) instead of the mean. Needs --scale-bits'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from plan" -l force -d 'Replace an existing output'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from plan" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from plan" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from plan" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -l ring -d 'The ring file (`gym ring plan`)' -r -F
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -l key -d 'This member\'s key (`gym keygen`); its public key must be in the ring file. In a hybrid ring (every member with an ML-DSA-87 key) it needs its listed ML-DSA-87 half too' -r -F
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -l input -d 'This member\'s delta. All members\' deltas must have the same tensors. In a leader ring of a hierarchical round: a group\'s sum file (written by a ring with --sum-output), whose integers enter the exact sum as they are, with its weight total' -r -F
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -s o -l output -d 'Where to write the averaged delta (identical on every member); a sum file when the ring file says `output = "sum"`' -r -F
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -l weight -d 'This member\'s weight in the mean (e.g. tokens or samples), 1 to 2^32. A sum file input brings its own weight total' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -l timeout -d 'Seconds without progress before the member starts a view change' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -l quantize -d 'Expect a quantized ring of BITS bits per element: refused unless the ring file says `quantize = BITS` (the ring file decides; `gym ring plan --quantize`)' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -l connect-timeout -d 'Seconds to wait for all members to connect at the start' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -l listen -d 'Listen on this address instead of this member\'s address in the ring file (the others still dial the ring file\'s address: for a port forward, a NAT or a proxy in front)' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -l receipts -d 'Write the signed `forward` receipt (gym-ring-receipt/1, docs/rewards.md §7) this member issues to its predecessor in the final view, for `gym reward estimate`\'s ring/ folder' -r -F
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -l epoch -d 'The reward epoch the receipt is for' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -l force -d 'Replace an existing output'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -l json -d 'Print a JSON report (format `gym-ring-join/1`)'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from join" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from audit" -l input -d 'A member\'s input delta (repeatable): matched to the member that committed to its body digest' -r -F
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from audit" -l ring -d 'The ring file: take the members\' keys from it instead of from the result\'s record' -r -F
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from audit" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from audit" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from audit" -l json -d 'Print a JSON report (format `gym-ring-audit/1`)'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from audit" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from audit" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from audit" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from help" -f -a "plan" -d 'Write a ring file from lines of `ADDRESS PUBLIC-KEY` (or `ADDRESS {gym key show --json}`)'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from help" -f -a "join" -d 'Join a ring, run one all-reduce (weighted mean of the members\' deltas), write the result'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from help" -f -a "audit" -d 'Audit a result of `gym ring join` offline: receipts, transcript, members\' inputs, mean'
complete -c gym -n "__fish_gym_using_subcommand ring; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gym -n "__fish_gym_using_subcommand cid" -l cid-version -d '0: `Qm…` (kubo\'s default); 1: raw leaves, base32 (`bafk…` one chunk, `bafy…` a tree)' -r
complete -c gym -n "__fish_gym_using_subcommand cid" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand cid" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand cid" -l all -d 'Also list every file and directory inside directories, as `ipfs add -r` does'
complete -c gym -n "__fish_gym_using_subcommand cid" -l json -d 'Print JSON (format `gym-cid/1`)'
complete -c gym -n "__fish_gym_using_subcommand cid" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand cid" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand cid" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand publish" -l to -d 'Publish into this local folder, files named by CID' -r -F
complete -c gym -n "__fish_gym_using_subcommand publish" -l ipfs -d 'Publish to an IPFS node\'s RPC API' -r
complete -c gym -n "__fish_gym_using_subcommand publish" -l hf -d 'Publish to a Hugging Face Hub model repository' -r
complete -c gym -n "__fish_gym_using_subcommand publish" -l revision -d 'Hub branch to commit to' -r
complete -c gym -n "__fish_gym_using_subcommand publish" -s m -l message -d 'Hub commit message (default: "Upload <name> with gym")' -r
complete -c gym -n "__fish_gym_using_subcommand publish" -l cid-version -d 'CID version for --to and --ipfs (0: `Qm…`, 1: raw leaves, base32)' -r
complete -c gym -n "__fish_gym_using_subcommand publish" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand publish" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand publish" -l private -d 'Create the Hub repository private when it does not exist'
complete -c gym -n "__fish_gym_using_subcommand publish" -l force -d 'With --to: write again even when an entry of that CID exists'
complete -c gym -n "__fish_gym_using_subcommand publish" -l json -d 'Print JSON (format `gym-publish/1`)'
complete -c gym -n "__fish_gym_using_subcommand publish" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand publish" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand publish" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand model; and not __fish_seen_subcommand_from inspect help" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand model; and not __fish_seen_subcommand_from inspect help" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand model; and not __fish_seen_subcommand_from inspect help" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand model; and not __fish_seen_subcommand_from inspect help" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand model; and not __fish_seen_subcommand_from inspect help" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand model; and not __fish_seen_subcommand_from inspect help" -f -a "inspect" -d 'Show a model folder\'s architecture, parameters, memory and LoRA size'
complete -c gym -n "__fish_gym_using_subcommand model; and not __fish_seen_subcommand_from inspect help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gym -n "__fish_gym_using_subcommand model; and __fish_seen_subcommand_from inspect" -l rank -d 'LoRA rank for the adapter size' -r
complete -c gym -n "__fish_gym_using_subcommand model; and __fish_seen_subcommand_from inspect" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand model; and __fish_seen_subcommand_from inspect" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand model; and __fish_seen_subcommand_from inspect" -l json -d 'Print JSON (format `gym-model/1`)'
complete -c gym -n "__fish_gym_using_subcommand model; and __fish_seen_subcommand_from inspect" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand model; and __fish_seen_subcommand_from inspect" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand model; and __fish_seen_subcommand_from inspect" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "inspect" -d 'Show a model folder\'s architecture, parameters, memory and LoRA size'
complete -c gym -n "__fish_gym_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gym -n "__fish_gym_using_subcommand train" -l config -d 'Settings file (TOML, TRL/seed key names); flags override it' -r -F
complete -c gym -n "__fish_gym_using_subcommand train" -l model -d 'Hugging Face model folder, or a hub id ORG/NAME[@REVISION] resolved through the Hugging Face cache (HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE; downloads from HF_ENDPOINT with HF_TOKEN) (default: the bundled tiny Qwen3). Env: MODEL_NAME' -r -F
complete -c gym -n "__fish_gym_using_subcommand train" -l data -d 'Prompts: a JSONL, JSON or Parquet file with `prompt` or `messages`, optional `answer`, or a hub dataset id ORG/NAME[@REVISION] (its --split\'s Parquet or JSON files) (default: the bundled toy task, answering in digits)' -r -F
complete -c gym -n "__fish_gym_using_subcommand train" -l split -d 'Hub datasets: the split to train on [default: train]' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l data-config -d 'Hub datasets: the configuration (first folder, e.g. `main`) when the split exists in several' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l prompt-column -d 'The data column holding the prompt (a string, or a list of messages) [default: prompt or messages]' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l answer-column -d 'The data column holding the reference answer [default: answer]' -r
complete -c gym -n "__fish_gym_using_subcommand train" -s o -l output -d 'Output folder (metrics, checkpoints, deltas). Default: runs/train-<UTC time>' -r -F
complete -c gym -n "__fish_gym_using_subcommand train" -l key -d 'Worker key that signs the deltas (default: OUTPUT/worker.key, created if missing)' -r -F
complete -c gym -n "__fish_gym_using_subcommand train" -l ring -d 'Average with other workers: every aggregate_interval steps, join this ring (TOML, as `gym ring plan` writes; needs --key, a member\'s key) with the update since the last agreed mean (deltas/update-<seq>.delta; the mean update is deltas/ring-<seq>.delta) and continue from the new mean (deltas/avg-<seq>.delta)' -r -F
complete -c gym -n "__fish_gym_using_subcommand train" -l ring-timeout -d 'With --ring: seconds without progress before a member is dropped from a round' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l ring-connect-timeout -d 'With --ring: seconds to wait for every member to connect at each round' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l ring-quantize -d 'With --ring: expect quantized averaging at BITS bits per element (2 to 16); refused unless the ring file says `quantize = BITS` (`gym ring plan --quantize`)' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l device -d 'Where the model runs: cpu, cuda (GPU 0) or cuda:N; a GPU needs a build with the `cuda` feature and an NVIDIA driver (else exit code 22)' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l reward -d 'Reward `KIND[:ARG][@WEIGHT]` (repeat to combine): exact, math, math_format, regex:PAT, coverage:PAT, length:N, format, cmd:COMMAND' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l reward-cmd -d 'External scorer: gets JSON lines on stdin, prints one number per line (weight 1)' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l report-to -d 'Also log each step\'s metrics here: `tensorboard` writes event files to OUTPUT/runs/ (TRL\'s tag names; view with `tensorboard --logdir OUTPUT/runs`)' -r -f -a "none\t''
tensorboard\t''"
complete -c gym -n "__fish_gym_using_subcommand train" -l max-steps -d 'Optimiser steps to run' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l seed -d 'Seed of sampling, shuffling and the LoRA initialisation' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l learning-rate -d 'Peak learning rate of AdamW' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l lr-scheduler-type -d 'How the learning rate decays after the warm-up' -r -f -a "constant\t''
linear\t''
cosine\t''"
complete -c gym -n "__fish_gym_using_subcommand train" -l warmup-steps -d 'Steps over which the learning rate rises linearly from 0' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l beta -d 'KL coefficient. Env: GSPO_BETA' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l num-generations -d 'Completions per prompt (group size)' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l importance-sampling-level -d 'Env: IMPORTANCE_SAMPLING_LEVEL' -r -f -a "token\t'One ratio per token (PPO/GRPO)'
sequence\t'One ratio per sequence: the exponential of the mean token log-ratio (GSPO)'
sequence-token\t'The sequence ratio\'s value with per-token gradients (GSPO-token)'"
complete -c gym -n "__fish_gym_using_subcommand train" -l loss-type -d 'How the per-token losses of a micro-batch are averaged' -r -f -a "grpo\t'Mean over sequences of each sequence\'s mean over its tokens'
bnpo\t'Mean over the micro-batch\'s tokens'
dr-grpo\t'Sum over tokens divided by rows × max_completion_length'"
complete -c gym -n "__fish_gym_using_subcommand train" -l scale-rewards -d 'Which standard deviation divides the group-centred rewards' -r -f -a "group\t'The group\'s own standard deviation'
batch\t'The standard deviation of all rewards of the batch'
none\t'No division: advantages are the centred rewards'"
complete -c gym -n "__fish_gym_using_subcommand train" -l epsilon -d 'Lower clipping range of the importance ratio (1 - epsilon)' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l epsilon-high -d 'Upper clipping range of the importance ratio (1 + epsilon_high; default: epsilon)' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l per-device-train-batch-size -d 'Completions per micro-batch' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l steps-per-generation -d 'Micro-batches per rollout (default: gradient_accumulation_steps)' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l gradient-accumulation-steps -d 'Micro-batches whose gradients add up to one optimiser step' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l num-iterations -d 'Passes over each rollout (GRPO\'s mu)' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l max-completion-length -d 'Longest completion, in tokens' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l min-completion-length -d 'No end-of-sequence token before this many tokens' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l temperature -d 'Sampling temperature of the rollouts' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l top-p -d 'Nucleus sampling: keep the most likely tokens up to this probability mass (1: all)' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l top-k -d 'Sample among the K most likely tokens only (0: all)' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l lora-rank -d 'Rank of the LoRA factors' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l lora-alpha -d 'LoRA scaling numerator (the update is scaled by alpha / rank)' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l gradient-checkpointing -d 'Recompute each layer in the backward instead of keeping its activations (less memory, one more forward of the layers per step)' -r -f -a "true\t''
false\t''"
complete -c gym -n "__fish_gym_using_subcommand train" -l use-4bit -d 'NF4 base (true) or f32 base (false). Env: USE_4BIT' -r -f -a "true\t''
false\t''"
complete -c gym -n "__fish_gym_using_subcommand train" -l aggregate-interval -d 'Steps between signed deltas' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l save-steps -d 'Steps between resumable states and PEFT checkpoints' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand train" -l resume -d 'Continue the run in --output from its last saved state'
complete -c gym -n "__fish_gym_using_subcommand train" -l force -d 'Start afresh in an output folder that holds an earlier run'
complete -c gym -n "__fish_gym_using_subcommand train" -l print-config -d 'Print the resolved settings (TOML) and exit'
complete -c gym -n "__fish_gym_using_subcommand train" -l json -d 'Print a JSON summary at the end (format `gym-train/1`)'
complete -c gym -n "__fish_gym_using_subcommand train" -l mask-truncated-completions -d 'Zero the loss of completions that hit max_completion_length without ending'
complete -c gym -n "__fish_gym_using_subcommand train" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand train" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gym -n "__fish_gym_using_subcommand train" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand eval" -l model -d 'Hugging Face model folder, or a hub id ORG/NAME[@REVISION] resolved through the Hugging Face cache, as for `gym train` (default: the bundled tiny Qwen3)' -r -F
complete -c gym -n "__fish_gym_using_subcommand eval" -l adapter -d 'PEFT adapter folder to apply' -r -F
complete -c gym -n "__fish_gym_using_subcommand eval" -l delta -d 'A signed delta holding a LoRA adapter (as `gym train` writes); verified before use' -r -F
complete -c gym -n "__fish_gym_using_subcommand eval" -l trusted-keys -d 'With --delta: the signer must be listed here' -r -F
complete -c gym -n "__fish_gym_using_subcommand eval" -l data -d 'Prompts: a JSONL, JSON or Parquet file, or a hub dataset id ORG/NAME[@REVISION] (default: the bundled toy task)' -r -F
complete -c gym -n "__fish_gym_using_subcommand eval" -l split -d 'Hub datasets: the split to evaluate on' -r
complete -c gym -n "__fish_gym_using_subcommand eval" -l data-config -d 'Hub datasets: the configuration (first folder) when the split exists in several' -r
complete -c gym -n "__fish_gym_using_subcommand eval" -l prompt-column -d 'The data column holding the prompt [default: prompt or messages]' -r
complete -c gym -n "__fish_gym_using_subcommand eval" -l answer-column -d 'The data column holding the reference answer [default: answer]' -r
complete -c gym -n "__fish_gym_using_subcommand eval" -l reward -d 'Reward `KIND[:ARG][@WEIGHT]` (repeat to combine; default: exact, or the toy task\'s)' -r
complete -c gym -n "__fish_gym_using_subcommand eval" -l max-completion-length -r
complete -c gym -n "__fish_gym_using_subcommand eval" -l limit -d 'Evaluate only the first N examples' -r
complete -c gym -n "__fish_gym_using_subcommand eval" -l device -d 'Where the model runs: cpu, cuda (GPU 0) or cuda:N; a GPU needs a build with the `cuda` feature and an NVIDIA driver (else exit code 22)' -r
complete -c gym -n "__fish_gym_using_subcommand eval" -l report -d 'With --delta: also judge it as a validator does (docs/validation.md) and write the signed `gym-eval-report/1` here; --data must have `answer` fields' -r -F
complete -c gym -n "__fish_gym_using_subcommand eval" -l key -d 'Validator key that signs the report' -r -F
complete -c gym -n "__fish_gym_using_subcommand eval" -l start -d 'With --report: the delta\'s start (its parent); without it the "without" model is the bare model' -r -F
complete -c gym -n "__fish_gym_using_subcommand eval" -l max-norm -d 'With --report: the L2 bound on the delta\'s update' -r
complete -c gym -n "__fish_gym_using_subcommand eval" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand eval" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand eval" -l nf4 -d 'Quantize the base to NF4 (as training with use_4bit does)'
complete -c gym -n "__fish_gym_using_subcommand eval" -l enable-thinking -d 'Pass `enable_thinking=true` to the model\'s chat template for `messages` rows (Qwen3)'
complete -c gym -n "__fish_gym_using_subcommand eval" -l samples -d 'Include every completion in the output'
complete -c gym -n "__fish_gym_using_subcommand eval" -l json -d 'Print JSON (format `gym-eval/1`)'
complete -c gym -n "__fish_gym_using_subcommand eval" -l force -d 'Overwrite the report'
complete -c gym -n "__fish_gym_using_subcommand eval" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand eval" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand eval" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand generate" -l model -d 'Hugging Face model folder (config.json, safetensors, tokenizer.json), or a hub id ORG/NAME[@REVISION] resolved through the Hugging Face cache; default: the bundled tiny random Qwen3 (for demos: its output is noise)' -r -F
complete -c gym -n "__fish_gym_using_subcommand generate" -l prompt -d 'Prompt text (repeat for a batch)' -r
complete -c gym -n "__fish_gym_using_subcommand generate" -l adapter -d 'PEFT adapter folder to apply' -r -F
complete -c gym -n "__fish_gym_using_subcommand generate" -s n -l group -d 'Completions per prompt (a GSPO group)' -r
complete -c gym -n "__fish_gym_using_subcommand generate" -l max-new-tokens -d 'Stop each completion after this many tokens (or at the end-of-sequence token)' -r
complete -c gym -n "__fish_gym_using_subcommand generate" -l temperature -d '0 for greedy decoding' -r
complete -c gym -n "__fish_gym_using_subcommand generate" -l top-p -d 'Nucleus sampling: keep the most likely tokens up to this probability mass' -r
complete -c gym -n "__fish_gym_using_subcommand generate" -l top-k -d '0 disables top-k' -r
complete -c gym -n "__fish_gym_using_subcommand generate" -l seed -d 'Seed of the sampler: the same seed gives the same completions' -r
complete -c gym -n "__fish_gym_using_subcommand generate" -l device -d 'Where the model runs: cpu, cuda (GPU 0) or cuda:N; a GPU needs a build with the `cuda` feature and an NVIDIA driver (else exit code 22)' -r
complete -c gym -n "__fish_gym_using_subcommand generate" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand generate" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand generate" -l nf4 -d 'Quantize the linear layers to NF4 (as QLoRA does)'
complete -c gym -n "__fish_gym_using_subcommand generate" -l json -d 'Print JSON (format `gym-generate/1`)'
complete -c gym -n "__fish_gym_using_subcommand generate" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand generate" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand generate" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand plot" -s o -l output -d 'The picture to write: `.svg` or `.png` (1200 px wide, DejaVu Sans)' -r -F
complete -c gym -n "__fish_gym_using_subcommand plot" -l metrics -d 'Metrics to draw, one panel each, comma-separated' -r
complete -c gym -n "__fish_gym_using_subcommand plot" -l title -d 'Title above the panels (default: the input\'s file name)' -r
complete -c gym -n "__fish_gym_using_subcommand plot" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand plot" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand plot" -l force -d 'Replace the output if it exists'
complete -c gym -n "__fish_gym_using_subcommand plot" -l json -d 'Print a JSON summary (format `gym-plot/2`)'
complete -c gym -n "__fish_gym_using_subcommand plot" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand plot" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand plot" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand completions" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand completions" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand completions" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand completions" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand completions" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand download" -l split -d 'With --dataset: the split whose data files to fetch' -r
complete -c gym -n "__fish_gym_using_subcommand download" -l data-config -d 'With --dataset: the configuration (first folder) when the split exists in several' -r
complete -c gym -n "__fish_gym_using_subcommand download" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand download" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand download" -l dataset -d 'A dataset repository (default: a model: config, tokenizer, generation config and the safetensors weights, shards by their index)'
complete -c gym -n "__fish_gym_using_subcommand download" -l json -d 'Print JSON (format `gym-download/1`)'
complete -c gym -n "__fish_gym_using_subcommand download" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand download" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand download" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand validate" -l orchestrator -d 'Run as a job\'s validator service: judge every round\'s reported deltas and post signed verdicts to this orchestrator until the job ends (needs --key of a roster member with role = "validator"; policy from the job file; -o is then the folder for the rounds\' deltas and reports, default runs/validate-<id>)' -r
complete -c gym -n "__fish_gym_using_subcommand validate" -l data -d 'Held-out data, JSONL with `answer` fields (the loss is their NLL per token)' -r -F
complete -c gym -n "__fish_gym_using_subcommand validate" -l model -d 'Hugging Face model folder (default: the bundled tiny Qwen3)' -r -F
complete -c gym -n "__fish_gym_using_subcommand validate" -l start -d 'The round\'s starting point (the previous aggregate, or the run\'s start delta): updates are measured from it and every delta\'s parent_hash must be its digest' -r -F
complete -c gym -n "__fish_gym_using_subcommand validate" -l key -d 'Validator key: signs the reports' -r -F
complete -c gym -n "__fish_gym_using_subcommand validate" -s o -l output -d 'Write the signed reports here (JSON Lines; `.json` for a single delta)' -r -F
complete -c gym -n "__fish_gym_using_subcommand validate" -l max-norm -d 'L2 bound C on each update (delta minus start); larger ones fail' -r
complete -c gym -n "__fish_gym_using_subcommand validate" -l dp-noise-multiplier -d 'The job\'s DP noise multiplier z: the bound becomes C + z·C·(√d + 6) for d factors' -r
complete -c gym -n "__fish_gym_using_subcommand validate" -l epoch -d 'Required epoch of every delta (default: not checked)' -r
complete -c gym -n "__fish_gym_using_subcommand validate" -l tolerance -d 'Fail a delta that makes the held-out loss worse by more than this (nats per token)' -r
complete -c gym -n "__fish_gym_using_subcommand validate" -l max-tokens -d 'Cap on the tokens a delta may claim as its averaging weight (the job\'s assignment)' -r
complete -c gym -n "__fish_gym_using_subcommand validate" -l trusted-keys -d 'Signers must be listed here' -r -F
complete -c gym -n "__fish_gym_using_subcommand validate" -l limit -d 'Evaluate only the first N examples of the data' -r
complete -c gym -n "__fish_gym_using_subcommand validate" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand validate" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand validate" -l force -d 'Overwrite the output'
complete -c gym -n "__fish_gym_using_subcommand validate" -l nf4 -d 'Quantize the base to NF4 (as training with use_4bit does)'
complete -c gym -n "__fish_gym_using_subcommand validate" -l json -d 'Print JSON (format `gym-validate/1`)'
complete -c gym -n "__fish_gym_using_subcommand validate" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand validate" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand validate" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand orchestrate" -l job -d 'The job file (TOML: model, data, GSPO settings, epochs, rounds, roster, publish targets)' -r -F
complete -c gym -n "__fish_gym_using_subcommand orchestrate" -l key -d 'The orchestrator\'s key: signs the decision log; `gym job stop` needs it' -r -F
complete -c gym -n "__fish_gym_using_subcommand orchestrate" -l listen -d 'Address to serve the API on' -r
complete -c gym -n "__fish_gym_using_subcommand orchestrate" -l store -d 'Durable state: sqlite:PATH or a path (default: <job folder>/<name>.orch/state.sqlite), memory: (lost on exit), redis://HOST:PORT/DB (shared; needed for --standby). Restarting on the same store resumes the job' -r
complete -c gym -n "__fish_gym_using_subcommand orchestrate" -l lease -d 'Seconds the lease on a Redis store lasts without renewal (renewed every third of it): how long a standby waits after the active one dies' -r
complete -c gym -n "__fish_gym_using_subcommand orchestrate" -l advertise -d 'The URL workers reach this orchestrator at, shown by a standby (default: http://ADDR of --listen)' -r
complete -c gym -n "__fish_gym_using_subcommand orchestrate" -l linger -d 'Seconds to keep answering after the job is over, so workers see that it is' -r
complete -c gym -n "__fish_gym_using_subcommand orchestrate" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand orchestrate" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand orchestrate" -l standby -d 'Start as a standby (Redis store): serve read-only answers and refuse worker requests with 503 until the active orchestrator\'s lease expires, then take over the job'
complete -c gym -n "__fish_gym_using_subcommand orchestrate" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand orchestrate" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand orchestrate" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand work" -l orchestrator -d 'The orchestrator\'s URL (as `gym orchestrate` prints it), or several, comma-separated (an active orchestrator and its standbys): a dead one or a standby is skipped' -r
complete -c gym -n "__fish_gym_using_subcommand work" -l key -d 'This worker\'s key (its id must be on the job\'s roster)' -r -F
complete -c gym -n "__fish_gym_using_subcommand work" -s o -l output -d 'Output folder (metrics, deltas, the final adapter). Default: runs/work-<worker id>' -r -F
complete -c gym -n "__fish_gym_using_subcommand work" -l ring-addr -d 'Address the other ring members dial (default: 127.0.0.1 and a free port). In a round past the job\'s ring_size a leader\'s leader rings use the next ports (PORT+1 to PORT+3)' -r
complete -c gym -n "__fish_gym_using_subcommand work" -l ring-timeout -d 'Seconds without progress before a ring member is dropped' -r
complete -c gym -n "__fish_gym_using_subcommand work" -l attack -d 'Test seam for the attack table (docs/validation.md): misbehave as KIND. Hidden' -r -f -a "flip20\t'The update sign-flipped and scaled ×20: start − 20·(delta − start)'
noise\t'Random noise of 100× the honest update\'s norm in place of the update'
zero\t'No update at all (the start point, re-signed)'
replay\t'The worker\'s delta of an earlier round, reported again'
inflate\t'Compute record and report claiming 1000× the tokens trained'
poison\t'Trained toward the negated reward (a poisoned objective)'"
complete -c gym -n "__fish_gym_using_subcommand work" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand work" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand work" -l json -d 'Print a JSON summary at the end (format `gym-work/1`)'
complete -c gym -n "__fish_gym_using_subcommand work" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand work" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand work" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand job; and not __fish_seen_subcommand_from status stop log help" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand job; and not __fish_seen_subcommand_from status stop log help" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand job; and not __fish_seen_subcommand_from status stop log help" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand job; and not __fish_seen_subcommand_from status stop log help" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand job; and not __fish_seen_subcommand_from status stop log help" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand job; and not __fish_seen_subcommand_from status stop log help" -f -a "status" -d 'Workers and their state, the current epoch and round, reward and loss per accepted round, published checkpoints'
complete -c gym -n "__fish_gym_using_subcommand job; and not __fish_seen_subcommand_from status stop log help" -f -a "stop" -d 'Stop the job (signed with the orchestrator\'s key)'
complete -c gym -n "__fish_gym_using_subcommand job; and not __fish_seen_subcommand_from status stop log help" -f -a "log" -d 'Fetch the signed decision log and check every signature and the hash chain'
complete -c gym -n "__fish_gym_using_subcommand job; and not __fish_seen_subcommand_from status stop log help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from status" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from status" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from status" -l json -d 'Print `gym-job-status/1` JSON'
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from stop" -l key -d 'The orchestrator\'s key' -r -F
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from stop" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from stop" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from stop" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from stop" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from stop" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from log" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from log" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from log" -l json -d 'Print the entries as JSON (after checking them)'
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from log" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from log" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from log" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from help" -f -a "status" -d 'Workers and their state, the current epoch and round, reward and loss per accepted round, published checkpoints'
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from help" -f -a "stop" -d 'Stop the job (signed with the orchestrator\'s key)'
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from help" -f -a "log" -d 'Fetch the signed decision log and check every signature and the hash chain'
complete -c gym -n "__fish_gym_using_subcommand job; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gym -n "__fish_gym_using_subcommand demo" -s o -l output -d 'Folder for the job file, the orchestrator\'s state, the workers\' runs and the published checkpoints (an earlier demo there is replaced)' -r -F
complete -c gym -n "__fish_gym_using_subcommand demo" -l threads -d 'Worker threads for parallel work (default: one per core)' -r
complete -c gym -n "__fish_gym_using_subcommand demo" -l blas -d 'The CPU\'s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library\'s path or file name' -r
complete -c gym -n "__fish_gym_using_subcommand demo" -l json -d 'Print a JSON summary at the end (format `gym-demo/1`)'
complete -c gym -n "__fish_gym_using_subcommand demo" -s q -l quiet -d 'Print nothing on stderr except errors'
complete -c gym -n "__fish_gym_using_subcommand demo" -s h -l help -d 'Print help'
complete -c gym -n "__fish_gym_using_subcommand demo" -s V -l version -d 'Print version'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "keygen" -d 'Create a worker key (Ed25519, optionally with ML-DSA-87)'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "key" -d 'Work with key files'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "delta" -d 'Pack, unpack, inspect, verify and compare DELTA files'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "reward" -d 'Estimate epoch rewards; sign and verify reward claims'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "ring" -d 'Average deltas with other workers: authenticated, encrypted, verifiable ring all-reduce'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "cid" -d 'Print the CIDs `ipfs add` would give files or directories, computed offline'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "publish" -d 'Publish a file or folder: to a local CID-named folder, an IPFS node, the Hugging Face Hub'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "model" -d 'Inspect model folders (architecture, parameters, memory, LoRA size)'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "train" -d 'Fine-tune with GSPO (LoRA over an NF4 base); write metrics, checkpoints, signed deltas'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "eval" -d 'Evaluate a model or adapter: mean reward, accuracy, NLL of reference answers'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "generate" -d 'Complete prompts with a model (default: the bundled tiny Qwen3)'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "plot" -d 'Draw training curves (metrics JSON Lines) into an SVG, one panel per metric'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "completions" -d 'Print a shell completion script'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "download" -d 'Download a model or dataset by hub id into the Hugging Face cache; print its folder'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "validate" -d 'Check a round\'s deltas (signature, sequence, base, norm, held-out loss); signed verdicts'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "orchestrate" -d 'Run a job\'s orchestrator: rounds, rings, signed decision log, checkpoint publishing'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "work" -d 'Train for an orchestrator\'s job: register, train, report, join each round\'s ring'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "job" -d 'Inspect or stop a running job'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "demo" -d 'The whole protocol on one machine: an orchestrator and 3 workers, 2 epochs, on loopback'
complete -c gym -n "__fish_gym_using_subcommand help; and not __fish_seen_subcommand_from keygen key delta reward ring cid publish model train eval generate plot completions download validate orchestrate work job demo help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from key" -f -a "show" -d 'Show the public identity of a key file: worker id and public keys'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from delta" -f -a "pack" -d 'Pack a .safetensors file or a PEFT adapter folder into a DELTA file'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from delta" -f -a "unpack" -d 'Unpack a DELTA file to .safetensors (or a PEFT adapter folder), checking it fully'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from delta" -f -a "inspect" -d 'Show a DELTA file\'s header, metadata, tensors and signer (reads headers only)'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from delta" -f -a "verify" -d 'Verify DELTA files: structure, checksum, signatures, trust and policy'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from delta" -f -a "diff" -d 'Compare two DELTA files tensor by tensor (L2 distance, max abs difference, cosine)'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from reward" -f -a "estimate" -d 'Estimate an epoch\'s rewards from an epoch folder or a contributions file'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from reward" -f -a "claim" -d 'Sign a reward claim binding your signed delta (digest, CID) to its compute record'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from reward" -f -a "verify-claim" -d 'Verify a reward claim\'s signature, and optionally that it matches a delta'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from reward" -f -a "economics" -d 'Print the economics in effect as TOML (the defaults, or FILE with defaults filled in)'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from ring" -f -a "plan" -d 'Write a ring file from lines of `ADDRESS PUBLIC-KEY` (or `ADDRESS {gym key show --json}`)'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from ring" -f -a "join" -d 'Join a ring, run one all-reduce (weighted mean of the members\' deltas), write the result'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from ring" -f -a "audit" -d 'Audit a result of `gym ring join` offline: receipts, transcript, members\' inputs, mean'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from model" -f -a "inspect" -d 'Show a model folder\'s architecture, parameters, memory and LoRA size'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from job" -f -a "status" -d 'Workers and their state, the current epoch and round, reward and loss per accepted round, published checkpoints'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from job" -f -a "stop" -d 'Stop the job (signed with the orchestrator\'s key)'
complete -c gym -n "__fish_gym_using_subcommand help; and __fish_seen_subcommand_from job" -f -a "log" -d 'Fetch the signed decision log and check every signature and the hash chain'
