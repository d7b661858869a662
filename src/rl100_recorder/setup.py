from setuptools import setup

package_name = 'rl100_recorder'

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
        'The rl100 episode recorder: one rosbag2 MCAP bag per episode with its label, '
        'finalised atomically.'
    ),
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'recorder_node = rl100_recorder.recorder_node:main',
        ],
    },
)
