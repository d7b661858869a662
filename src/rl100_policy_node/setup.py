from setuptools import setup

package_name = 'rl100_policy_node'

setup(
    name=package_name,
    version='0.1.0',
    packages=[package_name],
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='rl100 maintainers',
    maintainer_email='maintainers@rl100.dev',
    description=(
        'The rl100 policy node: runs the one-step policy with ONNX Runtime at control '
        'rate and publishes action chunks.'
    ),
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'policy_node = rl100_policy_node.policy_node:main',
        ],
    },
)
