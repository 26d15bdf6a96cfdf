
use builtin;
use str;

set edit:completion:arg-completer[gym] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'gym'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'gym'= {
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand keygen 'Create a worker key (Ed25519, optionally with ML-DSA-87)'
            cand key 'Work with key files'
            cand delta 'Pack, unpack, inspect, verify and compare DELTA files'
            cand reward 'Estimate epoch rewards; sign and verify reward claims'
            cand ring 'Average deltas with other workers: authenticated, encrypted, verifiable ring all-reduce'
            cand cid 'Print the CIDs `ipfs add` would give files or directories, computed offline'
            cand publish 'Publish a file or folder: to a local CID-named folder, an IPFS node, the Hugging Face Hub'
            cand model 'Inspect model folders (architecture, parameters, memory, LoRA size)'
            cand train 'Fine-tune with GSPO (LoRA over an NF4 base); write metrics, checkpoints, signed deltas'
            cand eval 'Evaluate a model or adapter: mean reward, accuracy, NLL of reference answers'
            cand generate 'Complete prompts with a model (default: the bundled tiny Qwen3)'
            cand plot 'Draw training curves (metrics JSON Lines) into an SVG, one panel per metric'
            cand completions 'Print a shell completion script'
            cand download 'Download a model or dataset by hub id into the Hugging Face cache; print its folder'
            cand validate 'Check a round''s deltas (signature, sequence, base, norm, held-out loss); signed verdicts'
            cand orchestrate 'Run a job''s orchestrator: rounds, rings, signed decision log, checkpoint publishing'
            cand work 'Train for an orchestrator''s job: register, train, report, join each round''s ring'
            cand job 'Inspect or stop a running job'
            cand demo 'The whole protocol on one machine: an orchestrator and 3 workers, 2 epochs, on loopback'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gym;keygen'= {
            cand -o 'Where to write the private key (PKCS#8 PEM, mode 0600)'
            cand --output 'Where to write the private key (PKCS#8 PEM, mode 0600)'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --pq 'Also create an ML-DSA-87 key pair for hybrid (post-quantum) signatures'
            cand --force 'Replace an existing key file'
            cand --json 'Print the public identity as JSON'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;key'= {
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand show 'Show the public identity of a key file: worker id and public keys'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gym;key;show'= {
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --json 'Print JSON (format `gym-key/1`): worker_id, ed25519, ed25519_pem, ml_dsa_87'
            cand --pem 'Print only the Ed25519 public key as SPKI PEM (as `openssl pkey -pubout` does)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;key;help'= {
            cand show 'Show the public identity of a key file: worker id and public keys'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gym;key;help;show'= {
        }
        &'gym;key;help;help'= {
        }
        &'gym;delta'= {
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand pack 'Pack a .safetensors file or a PEFT adapter folder into a DELTA file'
            cand unpack 'Unpack a DELTA file to .safetensors (or a PEFT adapter folder), checking it fully'
            cand inspect 'Show a DELTA file''s header, metadata, tensors and signer (reads headers only)'
            cand verify 'Verify DELTA files: structure, checksum, signatures, trust and policy'
            cand diff 'Compare two DELTA files tensor by tensor (L2 distance, max abs difference, cosine)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gym;delta;pack'= {
            cand -o 'The DELTA file to write'
            cand --output 'The DELTA file to write'
            cand --sign 'Sign with this key file (hybrid Ed25519 + ML-DSA-87 when the key has both)'
            cand --compression 'compression'
            cand --chunk-size 'Raw bytes per chunk: a power of two from 256 bytes to 64MiB'
            cand --epoch 'epoch'
            cand --step 'step'
            cand --seq 'Sequence number; must increase with every delta a worker publishes'
            cand --loss 'loss'
            cand --worker-id 'Worker label (default: the signer''s worker id, or "anonymous" when unsigned)'
            cand --base-hash 'SHA3-256 of the base model state the delta was trained against'
            cand --parent-hash 'Body digest of the delta this one applies on top of'
            cand --timestamp 'RFC 3339 UTC time (default: now, or SOURCE_DATE_EPOCH)'
            cand --tokens 'Compute record: tokens processed'
            cand --flops 'Compute record: floating-point operations'
            cand --device 'Compute record: device description'
            cand --wall-seconds 'Compute record: wall-clock seconds'
            cand --config 'A JSON object summarising the training configuration, stored as `config`'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --force 'Replace OUT if it exists'
            cand --json 'Print a JSON summary (format `gym-delta-pack/1`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;delta;unpack'= {
            cand -o 'Output .safetensors file, or folder for a PEFT adapter'
            cand --output 'Output .safetensors file, or folder for a PEFT adapter'
            cand --format 'format'
            cand --trusted-keys 'Require a signer from this file (see `gym delta verify --help`)'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --force 'Replace OUT if it exists'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;delta;inspect'= {
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --json 'Print JSON (format `gym-delta-inspect/1`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;delta;verify'= {
            cand --trusted-keys 'Require every delta to be signed by a key in this file'
            cand --min-seq 'Reject deltas whose sequence number is below N'
            cand --base-hash 'Reject deltas whose base model hash differs'
            cand --vectors 'Check every test vector of a manifest against its expected verdict'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --require-signature 'Require a signature (from anyone) even without --trusted-keys'
            cand --json 'Print JSON (format `gym-delta-verify/1`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;delta;diff'= {
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --json 'Print JSON (format `gym-delta-diff/1`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;delta;help'= {
            cand pack 'Pack a .safetensors file or a PEFT adapter folder into a DELTA file'
            cand unpack 'Unpack a DELTA file to .safetensors (or a PEFT adapter folder), checking it fully'
            cand inspect 'Show a DELTA file''s header, metadata, tensors and signer (reads headers only)'
            cand verify 'Verify DELTA files: structure, checksum, signatures, trust and policy'
            cand diff 'Compare two DELTA files tensor by tensor (L2 distance, max abs difference, cosine)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gym;delta;help;pack'= {
        }
        &'gym;delta;help;unpack'= {
        }
        &'gym;delta;help;inspect'= {
        }
        &'gym;delta;help;verify'= {
        }
        &'gym;delta;help;diff'= {
        }
        &'gym;delta;help;help'= {
        }
        &'gym;reward'= {
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand estimate 'Estimate an epoch''s rewards from an epoch folder or a contributions file'
            cand claim 'Sign a reward claim binding your signed delta (digest, CID) to its compute record'
            cand verify-claim 'Verify a reward claim''s signature, and optionally that it matches a delta'
            cand economics 'Print the economics in effect as TOML (the defaults, or FILE with defaults filled in)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gym;reward;estimate'= {
            cand --economics 'Economics file (TOML). Missing fields take the defaults shown by `gym reward economics`'
            cand --epoch 'Epoch to estimate (0-based; default: the input''s "epoch" field, else 0 for a contributions file)'
            cand --model-params 'Model size in parameters. Claimed FLOPs are capped at 6 x params x tokens. Required for an epoch folder; applies to contributions records that give "tokens"'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --json 'Print JSON (format `gym-reward-estimate/1`)'
            cand --csv 'Print CSV, one line per node'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;reward;claim'= {
            cand --delta 'Your signed delta'
            cand --cid 'The IPFS CID the delta was published under (checked for syntax, not recomputed)'
            cand --key 'The key that signed the delta'
            cand -o 'Where to write the claim (JSON, format `gym-reward-claim/1`)'
            cand --output 'Where to write the claim (JSON, format `gym-reward-claim/1`)'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --force 'Replace the output if it exists'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;reward;verify-claim'= {
            cand --delta 'Also check that this delta is the one claimed: digest, file hash, signer, compute record'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --json 'Print JSON (format `gym-reward-claim-verify/1`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;reward;economics'= {
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;reward;help'= {
            cand estimate 'Estimate an epoch''s rewards from an epoch folder or a contributions file'
            cand claim 'Sign a reward claim binding your signed delta (digest, CID) to its compute record'
            cand verify-claim 'Verify a reward claim''s signature, and optionally that it matches a delta'
            cand economics 'Print the economics in effect as TOML (the defaults, or FILE with defaults filled in)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gym;reward;help;estimate'= {
        }
        &'gym;reward;help;claim'= {
        }
        &'gym;reward;help;verify-claim'= {
        }
        &'gym;reward;help;economics'= {
        }
        &'gym;reward;help;help'= {
        }
        &'gym;ring'= {
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand plan 'Write a ring file from lines of `ADDRESS PUBLIC-KEY` (or `ADDRESS {gym key show --json}`)'
            cand join 'Join a ring, run one all-reduce (weighted mean of the members'' deltas), write the result'
            cand audit 'Audit a result of `gym ring join` offline: receipts, transcript, members'' inputs, mean'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gym;ring;plan'= {
            cand -o 'Where to write the ring file (default: standard output)'
            cand --output 'Where to write the ring file (default: standard output)'
            cand --round 'Round number: increase it for every all-reduce, so messages of one cannot be replayed into another'
            cand --chunk-elements 'Elements per data message (pipelining granularity). Default: 65536, or 262144 in a hybrid ring (every member with an ML-DSA-87 key), whose signatures cost ~20× more'
            cand --max-weight 'Largest weight a member may commit (1 to 2^32, default 2^32). A member committing more is excluded by the others. Together with --max-exponent it fixes the precision every honest member is guaranteed (printed)'
            cand --max-exponent 'Largest input exponent a member may commit: every element of its delta must be below 2^E in magnitude (default 8). A member committing more is excluded by the others'
            cand --scale-bits 'Fix the fixed-point scale at 2^F instead of the one the members'' commits give: every ring of a hierarchical round uses the round''s F, 58 − max_exponent − bitlen(N · max_weight) over its N members (docs/ring-protocol.md "Hierarchical rounds")'
            cand --quantize 'Quantized averaging: every member rounds its delta, per block of 64 values, to BITS-bit signed multiples of a power of two (2 to 16 bits) before the exact sum. Smaller data messages; each element''s error is at most half a step, 2^(e−BITS) for a block whose values are below 2^e (docs/ring-protocol.md, "Quantized averaging"). Default: lossless'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --sum-output 'Make every member write the group''s exact integer sum and weight total (a sum file, the input of a leader ring) instead of the mean. Needs --scale-bits'
            cand --force 'Replace an existing output'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;ring;join'= {
            cand --ring 'The ring file (`gym ring plan`)'
            cand --key 'This member''s key (`gym keygen`); its public key must be in the ring file. In a hybrid ring (every member with an ML-DSA-87 key) it needs its listed ML-DSA-87 half too'
            cand --input 'This member''s delta. All members'' deltas must have the same tensors. In a leader ring of a hierarchical round: a group''s sum file (written by a ring with --sum-output), whose integers enter the exact sum as they are, with its weight total'
            cand -o 'Where to write the averaged delta (identical on every member); a sum file when the ring file says `output = "sum"`'
            cand --output 'Where to write the averaged delta (identical on every member); a sum file when the ring file says `output = "sum"`'
            cand --weight 'This member''s weight in the mean (e.g. tokens or samples), 1 to 2^32. A sum file input brings its own weight total'
            cand --timeout 'Seconds without progress before the member starts a view change'
            cand --quantize 'Expect a quantized ring of BITS bits per element: refused unless the ring file says `quantize = BITS` (the ring file decides; `gym ring plan --quantize`)'
            cand --connect-timeout 'Seconds to wait for all members to connect at the start'
            cand --listen 'Listen on this address instead of this member''s address in the ring file (the others still dial the ring file''s address: for a port forward, a NAT or a proxy in front)'
            cand --receipts 'Write the signed `forward` receipt (gym-ring-receipt/1, docs/rewards.md §7) this member issues to its predecessor in the final view, for `gym reward estimate`''s ring/ folder'
            cand --epoch 'The reward epoch the receipt is for'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --force 'Replace an existing output'
            cand --json 'Print a JSON report (format `gym-ring-join/1`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;ring;audit'= {
            cand --input 'A member''s input delta (repeatable): matched to the member that committed to its body digest'
            cand --ring 'The ring file: take the members'' keys from it instead of from the result''s record'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --json 'Print a JSON report (format `gym-ring-audit/1`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;ring;help'= {
            cand plan 'Write a ring file from lines of `ADDRESS PUBLIC-KEY` (or `ADDRESS {gym key show --json}`)'
            cand join 'Join a ring, run one all-reduce (weighted mean of the members'' deltas), write the result'
            cand audit 'Audit a result of `gym ring join` offline: receipts, transcript, members'' inputs, mean'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gym;ring;help;plan'= {
        }
        &'gym;ring;help;join'= {
        }
        &'gym;ring;help;audit'= {
        }
        &'gym;ring;help;help'= {
        }
        &'gym;cid'= {
            cand --cid-version '0: `Qm…` (kubo''s default); 1: raw leaves, base32 (`bafk…` one chunk, `bafy…` a tree)'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --all 'Also list every file and directory inside directories, as `ipfs add -r` does'
            cand --json 'Print JSON (format `gym-cid/1`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;publish'= {
            cand --to 'Publish into this local folder, files named by CID'
            cand --ipfs 'Publish to an IPFS node''s RPC API'
            cand --hf 'Publish to a Hugging Face Hub model repository'
            cand --revision 'Hub branch to commit to'
            cand -m 'Hub commit message (default: "Upload <name> with gym")'
            cand --message 'Hub commit message (default: "Upload <name> with gym")'
            cand --cid-version 'CID version for --to and --ipfs (0: `Qm…`, 1: raw leaves, base32)'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --private 'Create the Hub repository private when it does not exist'
            cand --force 'With --to: write again even when an entry of that CID exists'
            cand --json 'Print JSON (format `gym-publish/1`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;model'= {
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand inspect 'Show a model folder''s architecture, parameters, memory and LoRA size'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gym;model;inspect'= {
            cand --rank 'LoRA rank for the adapter size'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --json 'Print JSON (format `gym-model/1`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;model;help'= {
            cand inspect 'Show a model folder''s architecture, parameters, memory and LoRA size'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gym;model;help;inspect'= {
        }
        &'gym;model;help;help'= {
        }
        &'gym;train'= {
            cand --config 'Settings file (TOML, TRL/seed key names); flags override it'
            cand --model 'Hugging Face model folder, or a hub id ORG/NAME[@REVISION] resolved through the Hugging Face cache (HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE; downloads from HF_ENDPOINT with HF_TOKEN) (default: the bundled tiny Qwen3). Env: MODEL_NAME'
            cand --data 'Prompts: a JSONL, JSON or Parquet file with `prompt` or `messages`, optional `answer`, or a hub dataset id ORG/NAME[@REVISION] (its --split''s Parquet or JSON files) (default: the bundled toy task, answering in digits)'
            cand --split 'Hub datasets: the split to train on [default: train]'
            cand --data-config 'Hub datasets: the configuration (first folder, e.g. `main`) when the split exists in several'
            cand --prompt-column 'The data column holding the prompt (a string, or a list of messages) [default: prompt or messages]'
            cand --answer-column 'The data column holding the reference answer [default: answer]'
            cand -o 'Output folder (metrics, checkpoints, deltas). Default: runs/train-<UTC time>'
            cand --output 'Output folder (metrics, checkpoints, deltas). Default: runs/train-<UTC time>'
            cand --key 'Worker key that signs the deltas (default: OUTPUT/worker.key, created if missing)'
            cand --ring 'Average with other workers: every aggregate_interval steps, join this ring (TOML, as `gym ring plan` writes; needs --key, a member''s key) with the update since the last agreed mean (deltas/update-<seq>.delta; the mean update is deltas/ring-<seq>.delta) and continue from the new mean (deltas/avg-<seq>.delta)'
            cand --ring-timeout 'With --ring: seconds without progress before a member is dropped from a round'
            cand --ring-connect-timeout 'With --ring: seconds to wait for every member to connect at each round'
            cand --ring-quantize 'With --ring: expect quantized averaging at BITS bits per element (2 to 16); refused unless the ring file says `quantize = BITS` (`gym ring plan --quantize`)'
            cand --device 'Where the model runs: cpu, cuda (GPU 0) or cuda:N; a GPU needs a build with the `cuda` feature and an NVIDIA driver (else exit code 22)'
            cand --reward 'Reward `KIND[:ARG][@WEIGHT]` (repeat to combine): exact, math, math_format, regex:PAT, coverage:PAT, length:N, format, cmd:COMMAND'
            cand --reward-cmd 'External scorer: gets JSON lines on stdin, prints one number per line (weight 1)'
            cand --report-to 'Also log each step''s metrics here: `tensorboard` writes event files to OUTPUT/runs/ (TRL''s tag names; view with `tensorboard --logdir OUTPUT/runs`)'
            cand --max-steps 'Optimiser steps to run'
            cand --seed 'Seed of sampling, shuffling and the LoRA initialisation'
            cand --learning-rate 'Peak learning rate of AdamW'
            cand --lr-scheduler-type 'How the learning rate decays after the warm-up'
            cand --warmup-steps 'Steps over which the learning rate rises linearly from 0'
            cand --beta 'KL coefficient. Env: GSPO_BETA'
            cand --num-generations 'Completions per prompt (group size)'
            cand --importance-sampling-level 'Env: IMPORTANCE_SAMPLING_LEVEL'
            cand --loss-type 'How the per-token losses of a micro-batch are averaged'
            cand --scale-rewards 'Which standard deviation divides the group-centred rewards'
            cand --epsilon 'Lower clipping range of the importance ratio (1 - epsilon)'
            cand --epsilon-high 'Upper clipping range of the importance ratio (1 + epsilon_high; default: epsilon)'
            cand --per-device-train-batch-size 'Completions per micro-batch'
            cand --steps-per-generation 'Micro-batches per rollout (default: gradient_accumulation_steps)'
            cand --gradient-accumulation-steps 'Micro-batches whose gradients add up to one optimiser step'
            cand --num-iterations 'Passes over each rollout (GRPO''s mu)'
            cand --max-completion-length 'Longest completion, in tokens'
            cand --min-completion-length 'No end-of-sequence token before this many tokens'
            cand --temperature 'Sampling temperature of the rollouts'
            cand --top-p 'Nucleus sampling: keep the most likely tokens up to this probability mass (1: all)'
            cand --top-k 'Sample among the K most likely tokens only (0: all)'
            cand --lora-rank 'Rank of the LoRA factors'
            cand --lora-alpha 'LoRA scaling numerator (the update is scaled by alpha / rank)'
            cand --gradient-checkpointing 'Recompute each layer in the backward instead of keeping its activations (less memory, one more forward of the layers per step)'
            cand --use-4bit 'NF4 base (true) or f32 base (false). Env: USE_4BIT'
            cand --aggregate-interval 'Steps between signed deltas'
            cand --save-steps 'Steps between resumable states and PEFT checkpoints'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --resume 'Continue the run in --output from its last saved state'
            cand --force 'Start afresh in an output folder that holds an earlier run'
            cand --print-config 'Print the resolved settings (TOML) and exit'
            cand --json 'Print a JSON summary at the end (format `gym-train/1`)'
            cand --mask-truncated-completions 'Zero the loss of completions that hit max_completion_length without ending'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;eval'= {
            cand --model 'Hugging Face model folder, or a hub id ORG/NAME[@REVISION] resolved through the Hugging Face cache, as for `gym train` (default: the bundled tiny Qwen3)'
            cand --adapter 'PEFT adapter folder to apply'
            cand --delta 'A signed delta holding a LoRA adapter (as `gym train` writes); verified before use'
            cand --trusted-keys 'With --delta: the signer must be listed here'
            cand --data 'Prompts: a JSONL, JSON or Parquet file, or a hub dataset id ORG/NAME[@REVISION] (default: the bundled toy task)'
            cand --split 'Hub datasets: the split to evaluate on'
            cand --data-config 'Hub datasets: the configuration (first folder) when the split exists in several'
            cand --prompt-column 'The data column holding the prompt [default: prompt or messages]'
            cand --answer-column 'The data column holding the reference answer [default: answer]'
            cand --reward 'Reward `KIND[:ARG][@WEIGHT]` (repeat to combine; default: exact, or the toy task''s)'
            cand --max-completion-length 'max-completion-length'
            cand --limit 'Evaluate only the first N examples'
            cand --device 'Where the model runs: cpu, cuda (GPU 0) or cuda:N; a GPU needs a build with the `cuda` feature and an NVIDIA driver (else exit code 22)'
            cand --report 'With --delta: also judge it as a validator does (docs/validation.md) and write the signed `gym-eval-report/1` here; --data must have `answer` fields'
            cand --key 'Validator key that signs the report'
            cand --start 'With --report: the delta''s start (its parent); without it the "without" model is the bare model'
            cand --max-norm 'With --report: the L2 bound on the delta''s update'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --nf4 'Quantize the base to NF4 (as training with use_4bit does)'
            cand --enable-thinking 'Pass `enable_thinking=true` to the model''s chat template for `messages` rows (Qwen3)'
            cand --samples 'Include every completion in the output'
            cand --json 'Print JSON (format `gym-eval/1`)'
            cand --force 'Overwrite the report'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;generate'= {
            cand --model 'Hugging Face model folder (config.json, safetensors, tokenizer.json), or a hub id ORG/NAME[@REVISION] resolved through the Hugging Face cache; default: the bundled tiny random Qwen3 (for demos: its output is noise)'
            cand --prompt 'Prompt text (repeat for a batch)'
            cand --adapter 'PEFT adapter folder to apply'
            cand -n 'Completions per prompt (a GSPO group)'
            cand --group 'Completions per prompt (a GSPO group)'
            cand --max-new-tokens 'Stop each completion after this many tokens (or at the end-of-sequence token)'
            cand --temperature '0 for greedy decoding'
            cand --top-p 'Nucleus sampling: keep the most likely tokens up to this probability mass'
            cand --top-k '0 disables top-k'
            cand --seed 'Seed of the sampler: the same seed gives the same completions'
            cand --device 'Where the model runs: cpu, cuda (GPU 0) or cuda:N; a GPU needs a build with the `cuda` feature and an NVIDIA driver (else exit code 22)'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --nf4 'Quantize the linear layers to NF4 (as QLoRA does)'
            cand --json 'Print JSON (format `gym-generate/1`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;plot'= {
            cand -o 'The picture to write: `.svg` or `.png` (1200 px wide, DejaVu Sans)'
            cand --output 'The picture to write: `.svg` or `.png` (1200 px wide, DejaVu Sans)'
            cand --metrics 'Metrics to draw, one panel each, comma-separated'
            cand --title 'Title above the panels (default: the input''s file name)'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --force 'Replace the output if it exists'
            cand --json 'Print a JSON summary (format `gym-plot/2`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;completions'= {
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;download'= {
            cand --split 'With --dataset: the split whose data files to fetch'
            cand --data-config 'With --dataset: the configuration (first folder) when the split exists in several'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --dataset 'A dataset repository (default: a model: config, tokenizer, generation config and the safetensors weights, shards by their index)'
            cand --json 'Print JSON (format `gym-download/1`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;validate'= {
            cand --orchestrator 'Run as a job''s validator service: judge every round''s reported deltas and post signed verdicts to this orchestrator until the job ends (needs --key of a roster member with role = "validator"; policy from the job file; -o is then the folder for the rounds'' deltas and reports, default runs/validate-<id>)'
            cand --data 'Held-out data, JSONL with `answer` fields (the loss is their NLL per token)'
            cand --model 'Hugging Face model folder (default: the bundled tiny Qwen3)'
            cand --start 'The round''s starting point (the previous aggregate, or the run''s start delta): updates are measured from it and every delta''s parent_hash must be its digest'
            cand --key 'Validator key: signs the reports'
            cand -o 'Write the signed reports here (JSON Lines; `.json` for a single delta)'
            cand --output 'Write the signed reports here (JSON Lines; `.json` for a single delta)'
            cand --max-norm 'L2 bound C on each update (delta minus start); larger ones fail'
            cand --dp-noise-multiplier 'The job''s DP noise multiplier z: the bound becomes C + z·C·(√d + 6) for d factors'
            cand --epoch 'Required epoch of every delta (default: not checked)'
            cand --tolerance 'Fail a delta that makes the held-out loss worse by more than this (nats per token)'
            cand --max-tokens 'Cap on the tokens a delta may claim as its averaging weight (the job''s assignment)'
            cand --trusted-keys 'Signers must be listed here'
            cand --limit 'Evaluate only the first N examples of the data'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --force 'Overwrite the output'
            cand --nf4 'Quantize the base to NF4 (as training with use_4bit does)'
            cand --json 'Print JSON (format `gym-validate/1`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;orchestrate'= {
            cand --job 'The job file (TOML: model, data, GSPO settings, epochs, rounds, roster, publish targets)'
            cand --key 'The orchestrator''s key: signs the decision log; `gym job stop` needs it'
            cand --listen 'Address to serve the API on'
            cand --store 'Durable state: sqlite:PATH or a path (default: <job folder>/<name>.orch/state.sqlite), memory: (lost on exit), redis://HOST:PORT/DB (shared; needed for --standby). Restarting on the same store resumes the job'
            cand --lease 'Seconds the lease on a Redis store lasts without renewal (renewed every third of it): how long a standby waits after the active one dies'
            cand --advertise 'The URL workers reach this orchestrator at, shown by a standby (default: http://ADDR of --listen)'
            cand --linger 'Seconds to keep answering after the job is over, so workers see that it is'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --standby 'Start as a standby (Redis store): serve read-only answers and refuse worker requests with 503 until the active orchestrator''s lease expires, then take over the job'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;work'= {
            cand --orchestrator 'The orchestrator''s URL (as `gym orchestrate` prints it), or several, comma-separated (an active orchestrator and its standbys): a dead one or a standby is skipped'
            cand --key 'This worker''s key (its id must be on the job''s roster)'
            cand -o 'Output folder (metrics, deltas, the final adapter). Default: runs/work-<worker id>'
            cand --output 'Output folder (metrics, deltas, the final adapter). Default: runs/work-<worker id>'
            cand --ring-addr 'Address the other ring members dial (default: 127.0.0.1 and a free port). In a round past the job''s ring_size a leader''s leader rings use the next ports (PORT+1 to PORT+3)'
            cand --ring-timeout 'Seconds without progress before a ring member is dropped'
            cand --attack 'Test seam for the attack table (docs/validation.md): misbehave as KIND. Hidden'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --json 'Print a JSON summary at the end (format `gym-work/1`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;job'= {
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand status 'Workers and their state, the current epoch and round, reward and loss per accepted round, published checkpoints'
            cand stop 'Stop the job (signed with the orchestrator''s key)'
            cand log 'Fetch the signed decision log and check every signature and the hash chain'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gym;job;status'= {
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --json 'Print `gym-job-status/1` JSON'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;job;stop'= {
            cand --key 'The orchestrator''s key'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;job;log'= {
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --json 'Print the entries as JSON (after checking them)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;job;help'= {
            cand status 'Workers and their state, the current epoch and round, reward and loss per accepted round, published checkpoints'
            cand stop 'Stop the job (signed with the orchestrator''s key)'
            cand log 'Fetch the signed decision log and check every signature and the hash chain'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gym;job;help;status'= {
        }
        &'gym;job;help;stop'= {
        }
        &'gym;job;help;log'= {
        }
        &'gym;job;help;help'= {
        }
        &'gym;demo'= {
            cand -o 'Folder for the job file, the orchestrator''s state, the workers'' runs and the published checkpoints (an earlier demo there is replaced)'
            cand --output 'Folder for the job file, the orchestrator''s state, the workers'' runs and the published checkpoints (an earlier demo there is replaced)'
            cand --threads 'Worker threads for parallel work (default: one per core)'
            cand --blas 'The CPU''s large matrix products: `auto` (a system oneMKL or OpenBLAS when installed, else builtin), `builtin` (the gemm crate), or a CBLAS library''s path or file name'
            cand --json 'Print a JSON summary at the end (format `gym-demo/1`)'
            cand -q 'Print nothing on stderr except errors'
            cand --quiet 'Print nothing on stderr except errors'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'gym;help'= {
            cand keygen 'Create a worker key (Ed25519, optionally with ML-DSA-87)'
            cand key 'Work with key files'
            cand delta 'Pack, unpack, inspect, verify and compare DELTA files'
            cand reward 'Estimate epoch rewards; sign and verify reward claims'
            cand ring 'Average deltas with other workers: authenticated, encrypted, verifiable ring all-reduce'
            cand cid 'Print the CIDs `ipfs add` would give files or directories, computed offline'
            cand publish 'Publish a file or folder: to a local CID-named folder, an IPFS node, the Hugging Face Hub'
            cand model 'Inspect model folders (architecture, parameters, memory, LoRA size)'
            cand train 'Fine-tune with GSPO (LoRA over an NF4 base); write metrics, checkpoints, signed deltas'
            cand eval 'Evaluate a model or adapter: mean reward, accuracy, NLL of reference answers'
            cand generate 'Complete prompts with a model (default: the bundled tiny Qwen3)'
            cand plot 'Draw training curves (metrics JSON Lines) into an SVG, one panel per metric'
            cand completions 'Print a shell completion script'
            cand download 'Download a model or dataset by hub id into the Hugging Face cache; print its folder'
            cand validate 'Check a round''s deltas (signature, sequence, base, norm, held-out loss); signed verdicts'
            cand orchestrate 'Run a job''s orchestrator: rounds, rings, signed decision log, checkpoint publishing'
            cand work 'Train for an orchestrator''s job: register, train, report, join each round''s ring'
            cand job 'Inspect or stop a running job'
            cand demo 'The whole protocol on one machine: an orchestrator and 3 workers, 2 epochs, on loopback'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gym;help;keygen'= {
        }
        &'gym;help;key'= {
            cand show 'Show the public identity of a key file: worker id and public keys'
        }
        &'gym;help;key;show'= {
        }
        &'gym;help;delta'= {
            cand pack 'Pack a .safetensors file or a PEFT adapter folder into a DELTA file'
            cand unpack 'Unpack a DELTA file to .safetensors (or a PEFT adapter folder), checking it fully'
            cand inspect 'Show a DELTA file''s header, metadata, tensors and signer (reads headers only)'
            cand verify 'Verify DELTA files: structure, checksum, signatures, trust and policy'
            cand diff 'Compare two DELTA files tensor by tensor (L2 distance, max abs difference, cosine)'
        }
        &'gym;help;delta;pack'= {
        }
        &'gym;help;delta;unpack'= {
        }
        &'gym;help;delta;inspect'= {
        }
        &'gym;help;delta;verify'= {
        }
        &'gym;help;delta;diff'= {
        }
        &'gym;help;reward'= {
            cand estimate 'Estimate an epoch''s rewards from an epoch folder or a contributions file'
            cand claim 'Sign a reward claim binding your signed delta (digest, CID) to its compute record'
            cand verify-claim 'Verify a reward claim''s signature, and optionally that it matches a delta'
            cand economics 'Print the economics in effect as TOML (the defaults, or FILE with defaults filled in)'
        }
        &'gym;help;reward;estimate'= {
        }
        &'gym;help;reward;claim'= {
        }
        &'gym;help;reward;verify-claim'= {
        }
        &'gym;help;reward;economics'= {
        }
        &'gym;help;ring'= {
            cand plan 'Write a ring file from lines of `ADDRESS PUBLIC-KEY` (or `ADDRESS {gym key show --json}`)'
            cand join 'Join a ring, run one all-reduce (weighted mean of the members'' deltas), write the result'
            cand audit 'Audit a result of `gym ring join` offline: receipts, transcript, members'' inputs, mean'
        }
        &'gym;help;ring;plan'= {
        }
        &'gym;help;ring;join'= {
        }
        &'gym;help;ring;audit'= {
        }
        &'gym;help;cid'= {
        }
        &'gym;help;publish'= {
        }
        &'gym;help;model'= {
            cand inspect 'Show a model folder''s architecture, parameters, memory and LoRA size'
        }
        &'gym;help;model;inspect'= {
        }
        &'gym;help;train'= {
        }
        &'gym;help;eval'= {
        }
        &'gym;help;generate'= {
        }
        &'gym;help;plot'= {
        }
        &'gym;help;completions'= {
        }
        &'gym;help;download'= {
        }
        &'gym;help;validate'= {
        }
        &'gym;help;orchestrate'= {
        }
        &'gym;help;work'= {
        }
        &'gym;help;job'= {
            cand status 'Workers and their state, the current epoch and round, reward and loss per accepted round, published checkpoints'
            cand stop 'Stop the job (signed with the orchestrator''s key)'
            cand log 'Fetch the signed decision log and check every signature and the hash chain'
        }
        &'gym;help;job;status'= {
        }
        &'gym;help;job;stop'= {
        }
        &'gym;help;job;log'= {
        }
        &'gym;help;demo'= {
        }
        &'gym;help;help'= {
        }
    ]
    $completions[$command]
}
